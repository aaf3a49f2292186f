//! `ddpm sample`: pictures from a trained checkpoint.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use ddpm_dataset::picture::save_png;
use ddpm_ops::Precision;
use ddpm_schedule::{DdimConfig, DdpmConfig, SamplerConfig, TimestepSpacing, VarianceKind};
use ddpm_trainer::{Pipeline, grid, image_progress, load_model, resolve_checkpoint, strip};

use crate::backend::{BackendArgs, Tables};
use crate::with_backend;

/// The grid written to `--out` shows at most this many images.
const GRID_AT_MOST: usize = 256;

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
    /// Number of images.
    #[arg(short = 'n', long, default_value_t = 64)]
    count: usize,
    /// Images sampled at once (memory grows with it).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the grid (of the first 256 images at most), or the strip.
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
    /// Also write each image as its own PNG into this folder, batch by batch as they come.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Use the raw weights even when EMA weights exist.
    #[arg(long)]
    no_ema: bool,
    /// Write the reverse process of the first image instead: ~10 snapshots from noise to image.
    #[arg(long)]
    strip: bool,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

/// The reverse process's settings, shared by the commands that sample.
#[derive(Debug, Args)]
pub struct SamplerArgs {
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
    /// DDPM reverse-step variance: the posterior's (small, the seed's) or beta (large, Ho et al.).
    #[arg(long, default_value = "small")]
    variance: VarianceKind,
    /// Do not clip the predicted clean image to [-1, 1] at each step (DDIM, when clipping, also
    /// recomputes the noise estimate from the clipped image).
    #[arg(long)]
    no_clip: bool,
}

impl SamplerArgs {
    /// Refuses DDIM settings without `--sampler ddim`.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.sampler == SamplerKind::Ddpm && (self.steps.is_some() || self.eta != 0.0) {
            bail!(
                "--steps and --eta are DDIM settings; add --sampler ddim (DDPM runs all T steps)"
            );
        }
        Ok(())
    }

    /// The sampler's settings for a schedule of `timesteps` steps.
    pub fn config(&self, timesteps: usize) -> SamplerConfig {
        match self.sampler {
            SamplerKind::Ddpm => SamplerConfig::Ddpm(
                DdpmConfig::new()
                    .with_variance(self.variance)
                    .with_clip_sample(!self.no_clip),
            ),
            SamplerKind::Ddim => SamplerConfig::Ddim(
                DdimConfig::new()
                    .with_num_inference_steps(self.steps.unwrap_or_else(|| 50.min(timesteps)))
                    .with_eta(self.eta)
                    .with_timestep_spacing(self.spacing)
                    .with_clip_sample(!self.no_clip)
                    // With diffusers' default (ε left unclipped) an undertrained model's DDIM
                    // samples came out blotchy, some saturated; ε from the clipped x0 fixes it.
                    .with_use_clipped_model_output(true),
            ),
        }
    }
}

/// The reverse process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// DDPM ancestral sampling over every timestep.
    Ddpm,
    /// DDIM (Song et al. 2021) over a few timesteps.
    Ddim,
}

/// Samples the images and writes the pictures.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.batch == 0 {
        bail!("-n and --batch must be at least 1");
    }
    args.sampler.check()?;
    // A wrong path or file is reported before any device is probed.
    ddpm_trainer::read_state(&resolve_checkpoint(&args.checkpoint)?)?;
    let selected = args.backend.select()?;
    let kernels = args.backend.kernels(selected);
    with_backend!(selected, B, device => sample::<B>(args, &B::inference(&kernels, Precision::F32)?, &device))
}

fn sample<B: Tables>(
    args: &SampleArgs,
    ops: &ddpm_ops::Ops<B>,
    device: &B::Device,
) -> anyhow::Result<()> {
    let loaded = load_model::<B>(&args.checkpoint, !args.no_ema, device)?;
    let config = &loaded.state.config;
    let schedule = config.schedule.init()?;
    let sampler_config = args.sampler.config(schedule.num_timesteps());
    let sampler = sampler_config.init::<B>(&schedule, config.prediction)?;
    B::seed(device, args.seed);
    let count = if args.strip { 1 } else { args.count };
    eprintln!(
        "sampling {count} image(s) of {size}x{size} with {steps} {kind} steps from {} ({} weights, step {})",
        loaded.checkpoint.display(),
        if loaded.ema { "EMA" } else { "raw" },
        loaded.state.step,
        size = config.image_size,
        steps = sampler.timesteps().len(),
        kind = sampler_config.name(),
    );
    let pipeline = Pipeline {
        model: &loaded.model,
        ops,
        sampler: &*sampler,
        image_size: config.image_size,
    };
    if args.strip {
        let frames = pipeline.reverse_pass(10, device)?;
        save_png(&strip(&frames), &args.out)?;
        let count = frames.len();
        println!(
            "wrote {} ({count} snapshots from noise to image)",
            args.out.display()
        );
        return Ok(());
    }
    let bar = image_progress(count as u64, "sampled");
    let dir = args.out_dir.as_deref();
    let shown = pipeline.write_pictures(count, args.batch, dir, GRID_AT_MOST, device, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    save_png(&grid(&shown), &args.out)?;
    match dir {
        Some(dir) => println!(
            "wrote {count} images to {} and a grid of {} to {}",
            dir.display(),
            shown.len(),
            args.out.display()
        ),
        None => println!("wrote {} ({} images)", args.out.display(), shown.len()),
    }
    Ok(())
}
