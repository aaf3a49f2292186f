//! `ddpm bench`: the throughput of one training step or one sampling step, as one JSON line.
//! `cargo xtask bench` runs it side by side with a PyTorch reference of the same model.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use clap::{Args, ValueEnum};
use ddpm_schedule::{DdpmConfig, Sampler};
use ddpm_trainer::{Preset, TrainConfig, batch_loss, optimizer};
use ddpm_unet::{Denoiser, NoisePredictor};
use serde::Serialize;

use crate::backend::BackendArgs;
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
    /// Number format: f32, or bf16 (cuda only: weights, activations and gradients in bf16).
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
}

/// The number format of weights, activations and gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// 32-bit floats, every backend.
    F32,
    /// bfloat16, cuda only.
    Bf16,
}

impl std::fmt::Display for Dtype {
    /// The name `--dtype` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no dtype is hidden");
        f.write_str(value.get_name())
    }
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
    /// Whether SimpleUnet's narrow deep layers ran as batch-wide matrix products.
    batch_gathering: bool,
    /// Whether SimpleUnet's other convolutions ran on this project's flex kernels.
    own_conv: bool,
    /// Whether SimpleUnet's ReLU + BatchNorm pairs ran on this project's flex kernels.
    own_norm: bool,
    /// Whether Adam stepped flex's parameters in this project's one pass.
    own_adam: bool,
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
    let config = TrainConfig::preset(args.preset);
    config.validate()?;
    let (seconds, parameters) = if args.dtype == Dtype::Bf16 {
        time_bf16(&config, args, selected)?
    } else {
        with_backend!(selected, B, device => time_case::<B>(&config, args, selected.on_cpu(), &device)?)
    };
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let result = BenchResult {
        implementation: "burn",
        case: args.case,
        preset: args.preset.to_string(),
        batch: args.batch,
        image_size: config.image_size,
        backend: format!("{}-{}", selected.choice, args.dtype),
        threads: rayon::current_num_threads(),
        batch_gathering: ddpm_unet::batch_gathering(),
        // `select` registers them only when flex runs.
        own_conv: ddpm_unet::conv_kernels::<crate::backend::Flex>().is_some(),
        own_norm: ddpm_unet::norm_kernels::<crate::backend::Flex>().is_some(),
        own_adam: ddpm_trainer::adam_step::<crate::backend::Flex>().is_some(),
        parameters,
        seconds,
        images_per_second: args.batch as f64 / median,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn time_case<B: Backend>(
    config: &TrainConfig,
    args: &BenchArgs,
    on_cpu: bool,
    device: &B::Device,
) -> anyhow::Result<(Vec<f64>, usize)> {
    match args.case {
        BenchCase::Train => time_training::<Autodiff<B>>(config, args, on_cpu, device),
        BenchCase::Sample => time_sampling::<B>(config, args, device),
    }
}

#[cfg(feature = "cuda")]
fn time_bf16(
    config: &TrainConfig,
    args: &BenchArgs,
    selected: crate::backend::Selected,
) -> anyhow::Result<(Vec<f64>, usize)> {
    anyhow::ensure!(
        selected.choice == crate::backend::BackendChoice::Cuda,
        "--dtype bf16 needs --backend cuda"
    );
    let device = burn_cuda::CudaDevice::new(selected.device);
    time_case::<burn_cuda::Cuda<burn::tensor::bf16>>(config, args, false, &device)
}

#[cfg(not(feature = "cuda"))]
fn time_bf16(
    _config: &TrainConfig,
    _args: &BenchArgs,
    _selected: crate::backend::Selected,
) -> anyhow::Result<(Vec<f64>, usize)> {
    anyhow::bail!("--dtype bf16 needs the cuda backend, and this ddpm was built without it")
}

fn input_batch<B: Backend>(
    model: &Denoiser<B>,
    config: &TrainConfig,
    batch: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let shape = [
        batch,
        model.image_channels(),
        config.image_size,
        config.image_size,
    ];
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

/// Seconds per training step, exactly the trainer's step on a synthetic batch.
fn time_training<B: AutodiffBackend>(
    config: &TrainConfig,
    args: &BenchArgs,
    on_cpu: bool,
    device: &B::Device,
) -> anyhow::Result<(Vec<f64>, usize)> {
    B::seed(device, 0);
    let mut model: Denoiser<B> = config.model.init(device)?;
    let parameters = ddpm_unet::trainable_params(&model);
    let mut optim = optimizer::<B>(config, on_cpu);
    let schedule = config.schedule.init()?;
    let forward = schedule.forward_process::<B>(device);
    let x0 = input_batch(&model, config, args.batch, device);
    let lr = config.optimizer.learning_rate;
    let mut seconds = Vec::new();
    for i in 0..args.warmup + args.iters {
        let start = Instant::now();
        let loss = batch_loss(&model, &forward, config, x0.clone());
        let _value: f32 = loss.clone().into_scalar().elem();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        B::sync(device)?;
        if i >= args.warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    Ok((seconds, parameters))
}

/// Seconds per sampling step: one prediction and one DDPM step of the whole batch.
fn time_sampling<B: Backend>(
    config: &TrainConfig,
    args: &BenchArgs,
    device: &B::Device,
) -> anyhow::Result<(Vec<f64>, usize)> {
    B::seed(device, 0);
    let model: Denoiser<B> = config.model.init(device)?;
    let parameters = ddpm_unet::trainable_params(&model);
    let schedule = config.schedule.init()?;
    // The seed's step (no x0 clipping), as the PyTorch reference takes it.
    let sampler = DdpmConfig::new()
        .with_clip_sample(false)
        .init(&schedule, config.prediction);
    let mut x = input_batch(&model, config, args.batch, device);
    let steps = Sampler::<B>::timesteps(&sampler).to_vec();
    let mut seconds = Vec::new();
    for (i, &t) in steps
        .iter()
        .cycle()
        .take(args.warmup + args.iters)
        .enumerate()
    {
        let start = Instant::now();
        let t_batch = Tensor::<B, 1, Int>::full([args.batch], t as i64, device);
        let output = model.predict(x.clone(), t_batch);
        x = sampler.step(output, t, x);
        B::sync(device)?;
        if i >= args.warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    Ok((seconds, parameters))
}
