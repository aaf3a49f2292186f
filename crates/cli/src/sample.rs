//! `ddpm sample`: pictures from a trained checkpoint.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use ddpm_dataset::picture::{save_png, tensor_to_images, tile};
use ddpm_schedule::{DdimConfig, DdpmConfig, Sampler, TimestepSpacing, VarianceKind};
use ddpm_trainer::{load_model, resolve_checkpoint};
use ddpm_unet::NoisePredictor;

use crate::backend::BackendArgs;
use crate::with_backend;

/// Arguments of `ddpm sample`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ddpm sample --checkpoint checkpoint/cpu-demo -n 64 --out grid.png\n  \
ddpm sample --checkpoint checkpoint/cpu-demo --sampler ddim --steps 50 --eta 0\n  \
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
    /// ddpm: all T ancestral steps (the seed); ddim: --steps deterministic steps (--eta 0).
    #[arg(long, value_enum, default_value_t = SamplerKind::Ddpm)]
    sampler: SamplerKind,
    /// Number of DDIM steps (default 50, at most the schedule's T).
    #[arg(long)]
    steps: Option<usize>,
    /// DDIM noise share: 0 deterministic, 1 as much noise as DDPM.
    #[arg(long, default_value_t = 0.0)]
    eta: f64,
    /// How DDIM spreads its steps over the schedule: linspace, leading or trailing (diffusers'
    /// names).
    #[arg(long, default_value = "leading")]
    spacing: TimestepSpacing,
    /// DDPM reverse-step variance: the posterior's ("small", the seed) or beta ("large", Ho et al.).
    #[arg(long, default_value = "small", value_parser = ["small", "large"])]
    variance: String,
    /// Do not clip the predicted clean image to [-1, 1] at each step (DDIM, when clipping, also
    /// recomputes the noise estimate from the clipped image).
    #[arg(long)]
    no_clip: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// The reverse process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// DDPM ancestral sampling over every timestep.
    Ddpm,
    /// DDIM (Song et al. 2021) over a few timesteps.
    Ddim,
}

/// Samples a batch and writes the pictures.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("-n must be at least 1");
    }
    if args.sampler == SamplerKind::Ddpm && (args.steps.is_some() || args.eta != 0.0) {
        bail!("--steps and --eta are DDIM settings; add --sampler ddim (DDPM runs all T steps)");
    }
    // A wrong path or file is reported before any device is probed.
    ddpm_trainer::read_state(&resolve_checkpoint(&args.checkpoint)?)?;
    let selected = args.backend.select()?;
    with_backend!(selected, B, device => sample::<B>(args, &device))
}

fn sample<B: Backend>(args: &SampleArgs, device: &B::Device) -> anyhow::Result<()> {
    let loaded = load_model::<B>(&args.checkpoint, !args.no_ema, device)?;
    let config = &loaded.state.config;
    let schedule = config.schedule.init()?;
    let sampler: Box<dyn Sampler<B>> = match args.sampler {
        SamplerKind::Ddpm => {
            let variance = if args.variance == "large" {
                VarianceKind::FixedLarge
            } else {
                VarianceKind::FixedSmall
            };
            let ddpm = DdpmConfig::new()
                .with_variance(variance)
                .with_clip_sample(!args.no_clip);
            Box::new(ddpm.init(&schedule, config.prediction))
        }
        SamplerKind::Ddim => {
            let steps = args
                .steps
                .unwrap_or_else(|| 50.min(schedule.num_timesteps()));
            let ddim = DdimConfig::new()
                .with_num_inference_steps(steps)
                .with_eta(args.eta)
                .with_timestep_spacing(args.spacing)
                .with_clip_sample(!args.no_clip)
                // With diffusers' default (ε left unclipped) an undertrained model's DDIM samples
                // came out blotchy, some saturated; recomputing ε from the clipped x0 fixed it.
                .with_use_clipped_model_output(true);
            Box::new(ddim.init(&schedule, config.prediction)?)
        }
    };
    B::seed(device, args.seed);
    let count = if args.strip { 1 } else { args.count };
    let shape = [
        count,
        loaded.model.image_channels(),
        config.image_size,
        config.image_size,
    ];
    let snapshots = if args.strip { 10 } else { 1 };
    eprintln!(
        "sampling {count} image(s) of {size}x{size} with {steps} {kind} steps from {} ({} weights, step {})",
        loaded.checkpoint.display(),
        if loaded.ema { "EMA" } else { "raw" },
        loaded.state.step,
        size = config.image_size,
        steps = sampler.timesteps().len(),
        kind = match args.sampler {
            SamplerKind::Ddpm => "DDPM",
            SamplerKind::Ddim => "DDIM",
        },
    );
    let model = |x, t| loaded.model.predict(x, t);
    let mut states = ddpm_schedule::sample(&*sampler, model, shape, snapshots, device);
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
