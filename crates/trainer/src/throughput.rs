//! The time of one training step and of one sampling step, on synthetic batches: what `ddpm
//! bench` reports and `cargo xtask bench` compares with PyTorch.

use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use ddpm_ops::{Ops, TrainingOps};
use ddpm_schedule::{DdpmConfig, Sampler};
use ddpm_unet::{Denoiser, NoisePredictor, trainable_params};

use crate::{TrainConfig, TrainError, Trainer};

/// How many steps to time, and on how large a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Images per step.
    pub batch: usize,
    /// Untimed steps first (allocator, autotuning).
    pub warmup: usize,
    /// Timed steps.
    pub iters: usize,
}

/// Seconds of each timed step, and the model's trainable parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTimes {
    /// One entry per timed step.
    pub seconds: Vec<f64>,
    /// The model's trainable parameters.
    pub parameters: usize,
}

impl StepTimes {
    /// The median step's images per second.
    pub fn images_per_second(&self, batch: usize) -> f64 {
        let mut sorted = self.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        batch as f64 / sorted[sorted.len() / 2]
    }
}

/// [`Trainer::step`] on one synthetic batch of `config`'s images, again and again, each loss
/// read back (as a PyTorch training loop's `loss.item()` does).
pub fn time_training<B: AutodiffBackend>(
    config: &TrainConfig,
    ops: TrainingOps<B>,
    timing: Timing,
    device: &B::Device,
) -> Result<StepTimes, TrainError> {
    let mut trainer = Trainer::<B>::new(config, ops, device)?;
    let parameters = trainable_params(trainer.model());
    let x0 = noise_batch(trainer.model(), config, timing.batch, device);
    let seconds = timed(timing, || {
        let loss = trainer.step(x0.clone());
        let _value: f32 = loss.into_scalar().elem();
        B::sync(device)
    })?;
    Ok(StepTimes {
        seconds,
        parameters,
    })
}

/// One prediction and one step of the seed's DDPM sampler (unclipped, as the PyTorch reference
/// steps) on a batch, timestep after timestep.
pub fn time_sampling<B: Backend>(
    config: &TrainConfig,
    ops: &Ops<B>,
    timing: Timing,
    device: &B::Device,
) -> Result<StepTimes, TrainError> {
    B::seed(device, config.seed);
    if ops.precision != config.precision {
        return Err(TrainError::Config(format!(
            "the recipe computes in {} but the sampling table in {}",
            config.precision, ops.precision
        )));
    }
    let model: Denoiser<B> = config
        .model
        .init(device)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let schedule = config
        .schedule
        .init()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let sampler = DdpmConfig::new()
        .with_clip_sample(false)
        .init(&schedule, config.prediction);
    let mut x = noise_batch(&model, config, timing.batch, device);
    let mut timesteps = Sampler::<B>::timesteps(&sampler).iter().copied().cycle();
    let seconds = timed(timing, || {
        let t = timesteps.next().expect("an endless cycle");
        let t_batch = Tensor::<B, 1, Int>::full([timing.batch], t as i64, device);
        let output = model.predict_with(ops, x.clone(), t_batch);
        x = sampler.step(output, t, x.clone());
        B::sync(device)
    })?;
    Ok(StepTimes {
        seconds,
        parameters: trainable_params(&model),
    })
}

/// Runs `step` `warmup + iters` times; the seconds of the last `iters`.
fn timed<E: std::fmt::Display>(
    timing: Timing,
    mut step: impl FnMut() -> Result<(), E>,
) -> Result<Vec<f64>, TrainError> {
    let mut seconds = Vec::with_capacity(timing.iters);
    for i in 0..timing.warmup + timing.iters {
        let start = Instant::now();
        step().map_err(|e| TrainError::Device(e.to_string()))?;
        if i >= timing.warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(seconds)
}

/// A batch of `batch` images of uniform noise in `[-1, 1]`, the model's size.
fn noise_batch<B: Backend>(
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
