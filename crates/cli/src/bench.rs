//! `ddpm bench`: the throughput of one training step or one sampling step, as one JSON line.
//! `cargo xtask bench` runs it side by side with a PyTorch reference of the same model.

use clap::{Args, ValueEnum};
use ddpm_ops::Precision;
use ddpm_trainer::{Preset, StepTimes, Timing, TrainConfig, time_sampling, time_training};
use serde::Serialize;

use crate::backend::{BackendArgs, Kernels, Tables};
use crate::with_backend;

/// Arguments of `ddpm bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ddpm bench --case train --preset seed --batch 8\n  \
ddpm bench --case sample --preset cpu-demo --batch 64 --backend ndarray\n\n\
Prints one JSON line: images per second (median over --iters timed steps after --warmup).\n\
Threads: RAYON_NUM_THREADS sets the CPU backends' thread count."
)]
pub struct BenchArgs {
    /// train: forward + backward + Adam on a batch; sample: one denoising step of a batch.
    #[arg(long, value_enum)]
    case: BenchCase,
    /// Whose model and image size: seed (SimpleUnet 64..1024, 3x32x32), cpu-demo, ddpm-cifar10.
    #[arg(long, default_value = "seed")]
    preset: Preset,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Untimed steps first (allocator, autotuning).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[command(flatten)]
    backend: BackendArgs,
    /// f32, or bf16: convolutions and attention in bf16, the rest in f32 (mixed precision).
    #[arg(long, default_value_t = Precision::F32)]
    precision: Precision,
}

/// What one timed step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchCase {
    /// A training step: loss, backward, Adam update (and the loss read back, as training does).
    Train,
    /// A sampling step: the model's prediction and one DDPM reverse step (the seed's, unclipped).
    Sample,
}

/// The JSON line printed.
#[derive(Debug, Serialize)]
struct BenchResult {
    implementation: &'static str,
    case: BenchCase,
    preset: String,
    batch: usize,
    image_size: usize,
    backend: String,
    threads: usize,
    /// The kernels the backend's tables used.
    #[serde(flatten)]
    kernels: Kernels,
    parameters: usize,
    seconds: Vec<f64>,
    images_per_second: f64,
}

/// Times the steps and prints the result.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.iters > 0,
        "--batch and --iters must be at least 1"
    );
    let selected = args.backend.select()?;
    let kernels = args.backend.kernels(selected);
    let config = TrainConfig {
        precision: args.precision,
        ..TrainConfig::preset(args.preset)
    };
    config.validate()?;
    let times =
        with_backend!(selected, B, device => time_case::<B>(&config, args, &kernels, &device)?);
    let result = BenchResult {
        implementation: "burn",
        case: args.case,
        preset: args.preset.to_string(),
        batch: args.batch,
        image_size: config.image_size,
        backend: format!("{}-{}", selected.choice, args.precision),
        threads: rayon::current_num_threads(),
        kernels,
        parameters: times.parameters,
        images_per_second: times.images_per_second(args.batch),
        seconds: times.seconds,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn time_case<B: Tables>(
    config: &TrainConfig,
    args: &BenchArgs,
    kernels: &Kernels,
    device: &B::Device,
) -> anyhow::Result<StepTimes> {
    let timing = Timing {
        batch: args.batch,
        warmup: args.warmup,
        iters: args.iters,
    };
    Ok(match args.case {
        BenchCase::Train => time_training(
            config,
            B::training(kernels, config.precision)?,
            timing,
            device,
        )?,
        BenchCase::Sample => time_sampling(
            config,
            &B::inference(kernels, config.precision)?,
            timing,
            device,
        )?,
    })
}
