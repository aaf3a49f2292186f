//! `ddpm sample`: pictures from a trained checkpoint.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use ddpm_dataset::picture::{save_png, tensor_to_images, tile};
use ddpm_schedule::{DdpmSampler, VarianceKind};
use ddpm_trainer::load_model;
use ddpm_unet::NoisePredictor;

use crate::backend::BackendChoice;
use crate::with_backend;

/// Arguments of `ddpm sample`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ddpm sample --checkpoint checkpoint/cpu-demo -n 64 --out grid.png\n  \
ddpm sample --checkpoint checkpoint/cpu-demo/step-002000 --strip --out reverse.png\n  \
ddpm sample --checkpoint checkpoint/cpu-demo --out-dir samples/ --no-ema"
)]
pub struct SampleArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of images, sampled as one batch.
    #[arg(short = 'n', long, default_value_t = 64)]
    count: usize,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the grid (or the strip).
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
    /// Also write each image as its own PNG into this folder.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Use the EMA weights when the checkpoint has them (default).
    #[arg(long, overrides_with = "no_ema")]
    ema: bool,
    /// Use the raw weights even when EMA weights exist.
    #[arg(long)]
    no_ema: bool,
    /// Write the reverse process of the first image instead: ~10 snapshots from noise to image.
    #[arg(long)]
    strip: bool,
    /// Reverse-step variance: the posterior's ("small", the seed) or beta ("large", Ho et al.).
    #[arg(long, default_value = "small", value_parser = ["small", "large"])]
    variance: String,
    /// CPU backend.
    #[arg(long, default_value_t = BackendChoice::Flex)]
    backend: BackendChoice,
}

/// Samples a batch with the seed's ancestral sampler and writes the pictures.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("-n must be at least 1");
    }
    with_backend!(args.backend, B => sample::<B>(args))
}

fn sample<B: Backend>(args: &SampleArgs) -> anyhow::Result<()> {
    let device = Default::default();
    let loaded = load_model::<B>(&args.checkpoint, !args.no_ema, &device)?;
    let config = &loaded.state.config;
    let schedule = config.schedule.init()?;
    let variance = if args.variance == "large" {
        VarianceKind::FixedLarge
    } else {
        VarianceKind::FixedSmall
    };
    let sampler = DdpmSampler::<B>::new(&schedule, config.prediction, variance, true, &device);
    B::seed(&device, args.seed);
    let count = if args.strip { 1 } else { args.count };
    let shape = [
        count,
        loaded.model.image_channels(),
        config.image_size,
        config.image_size,
    ];
    let snapshots = if args.strip { 10 } else { 1 };
    eprintln!(
        "sampling {count} image(s) of {size}x{size} with {} DDPM steps from {} ({} weights, step {})",
        schedule.num_timesteps(),
        loaded.checkpoint.display(),
        if loaded.ema { "EMA" } else { "raw" },
        loaded.state.step,
        size = config.image_size,
    );
    let mut states = sampler.sample(|x, t| loaded.model.predict(x, t), shape, snapshots, &device);
    if args.strip {
        let frames: Vec<_> = states
            .into_iter()
            .map(|state| tensor_to_images(state).map(|mut images| images.remove(0)))
            .collect::<Result<_, _>>()?;
        save_png(&tile(&frames, frames.len(), 2), &args.out)?;
        println!(
            "wrote {} ({} snapshots from noise to image)",
            args.out.display(),
            frames.len()
        );
        return Ok(());
    }
    let images = tensor_to_images(states.pop().expect("the final state"))?;
    let columns = (images.len() as f64).sqrt().ceil() as usize;
    save_png(&tile(&images, columns, 2), &args.out)?;
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (i, image) in images.iter().enumerate() {
            save_png(&image.to_rgb8(), &dir.join(format!("{i:04}.png")))?;
        }
    }
    println!("wrote {} ({} images)", args.out.display(), images.len());
    Ok(())
}
