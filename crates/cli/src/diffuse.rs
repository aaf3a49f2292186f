//! `ddpm diffuse`: the seed's forward-process figure.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use ddpm_dataset::picture::{open_image, save_png, square_crop};
use ddpm_schedule::{BetaSchedule, NoiseScheduleConfig, snapshot_timesteps};
use ddpm_trainer::{noised_frames, strip};

use crate::backend::Ndarray as Cpu;

/// Arguments of `ddpm diffuse`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ddpm diffuse --image cat.jpg --steps 10 --out strip.png\n\n\
The strip shows the image at t = 0, T/steps, 2T/steps, ... and at the last step T-1, \
left to right, each frame SIZE x SIZE with a 2-pixel white border."
)]
pub struct DiffuseArgs {
    /// The image to diffuse (png, jpeg, bmp, gif, webp or tiff).
    #[arg(long)]
    image: PathBuf,
    /// Frames before the last one: t = 0, T/steps, 2T/steps, ...
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Beta schedule: linear, quadratic, cosine or sigmoid.
    #[arg(long, default_value_t = BetaSchedule::Linear)]
    schedule: BetaSchedule,
    /// Number of diffusion steps T.
    #[arg(long, default_value_t = 300)]
    timesteps: usize,
    /// The image is scaled (short side) and centre-cropped to SIZE x SIZE before noising.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the PNG strip.
    #[arg(long, default_value = "strip.png")]
    out: PathBuf,
}

/// Noises the image at every frame's timestep in one batch and writes the strip.
pub fn run(args: &DiffuseArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if args.size == 0 {
        bail!("--size must be at least 1");
    }
    let schedule = NoiseScheduleConfig::new()
        .with_num_timesteps(args.timesteps)
        .with_beta_schedule(args.schedule)
        .init()
        .context("invalid noise schedule")?;
    let image = square_crop(&open_image(&args.image)?, args.size);

    let device = Default::default();
    Cpu::seed(&device, args.seed);
    let timesteps = snapshot_timesteps(schedule.num_timesteps(), args.steps);
    let frames = noised_frames::<Cpu>(&image, &schedule, &timesteps, &device)?;
    save_png(&strip(&frames), &args.out)?;
    let frames = frames.len();
    println!(
        "wrote {} ({frames} frames of {size}x{size} at t = {timesteps:?}, {schedule} schedule, T = {t_max})",
        args.out.display(),
        size = args.size,
        schedule = args.schedule,
        t_max = schedule.num_timesteps(),
    );
    Ok(())
}
