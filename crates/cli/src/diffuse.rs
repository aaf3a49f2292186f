//! `ddpm diffuse`: the seed's forward-process figure.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use burn_ndarray::NdArray;
use clap::Args;
use ddpm_dataset::picture::{
    Channels, image_to_tensor, open_image, save_png, square_crop, tensor_to_images, tile,
};
use ddpm_schedule::{BetaSchedule, NoiseScheduleConfig, snapshot_timesteps};

type Cpu = NdArray<f32>;

/// White pixels between frames of the strip.
const GAP: u32 = 2;

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
    let frames = timesteps.len();
    let x0 = image_to_tensor::<Cpu>(&image, Channels::Rgb, &device)
        .unsqueeze::<4>()
        .repeat_dim(0, frames);
    let t_values: Vec<i64> = timesteps.iter().map(|&t| t as i64).collect();
    let t = Tensor::<Cpu, 1, Int>::from_data(TensorData::new(t_values, [frames]), &device);
    let (x_t, _noise) = schedule.forward_process::<Cpu>(&device).q_sample(x0, t);

    let strip = tile(&tensor_to_images(x_t)?, frames, GAP);
    save_png(&strip, &args.out)?;
    println!(
        "wrote {} ({frames} frames of {size}x{size} at t = {timesteps:?}, {schedule} schedule, T = {t_max})",
        args.out.display(),
        size = args.size,
        schedule = args.schedule,
        t_max = schedule.num_timesteps(),
    );
    Ok(())
}
