//! The FID statistics of a model's samples: what `ddpm eval` and training's periodic FID take.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use ddpm_eval::{FeatureStats, FidInception, quantize};
use ddpm_ops::Ops;
use ddpm_schedule::SamplerConfig;
use ddpm_unet::NoisePredictor;
use serde::Serialize;

use crate::{Pipeline, TrainError, load_model};

/// The statistics of `count` samples of `pipeline`, drawn `batch` at a time from the backend's
/// generator as it stands, each quantised as a PNG would hold it; `progress(done)` after each
/// batch. Memory holds one batch of samples and a bounded sample of features.
pub fn sample_stats<B: Backend, M: NoisePredictor<B>>(
    pipeline: &Pipeline<'_, B, M>,
    inception: &FidInception<B>,
    (count, batch): (usize, usize),
    seed: u64,
    device: &B::Device,
    mut progress: impl FnMut(usize),
) -> FeatureStats {
    let mut accumulator = inception.accumulator(seed);
    let _ = pipeline.batches::<()>(count, batch, device, |_, images| {
        inception.add_pixels(&mut accumulator, quantize(images));
        progress(accumulator.count());
        Ok(())
    });
    accumulator.finish()
}

/// Where samples came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampledFrom {
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
    /// Its step.
    pub checkpoint_step: u64,
    /// Whether its EMA weights sampled.
    pub ema: bool,
    /// "DDPM" or "DDIM".
    pub sampler: &'static str,
    /// Reverse steps per sample.
    pub steps: usize,
    /// The seed of the noise.
    pub seed: u64,
}

/// [`sample_stats`] of the model in `checkpoint` (its EMA weights if `prefer_ema` and kept),
/// sampled by `sampler` from `seed`, computing through `ops`.
#[allow(clippy::too_many_arguments)]
pub fn checkpoint_stats<B: Backend>(
    checkpoint: &Path,
    prefer_ema: bool,
    sampler: &SamplerConfig,
    ops: &Ops<B>,
    inception: &FidInception<B>,
    sizes: (usize, usize),
    seed: u64,
    device: &B::Device,
    progress: impl FnMut(usize),
) -> Result<(FeatureStats, SampledFrom), TrainError> {
    let loaded = load_model::<B>(checkpoint, prefer_ema, device)?;
    let config = &loaded.state.config;
    let schedule = config
        .schedule
        .init()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let stepper = sampler
        .init::<B>(&schedule, config.prediction)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let pipeline = Pipeline {
        model: &loaded.model,
        ops,
        sampler: &*stepper,
        image_size: config.image_size,
    };
    B::seed(device, seed);
    let stats = sample_stats(&pipeline, inception, sizes, seed, device, progress);
    let from = SampledFrom {
        checkpoint: loaded.checkpoint.clone(),
        checkpoint_step: loaded.state.step,
        ema: loaded.ema,
        sampler: sampler.name(),
        steps: stepper.timesteps().len(),
        seed,
    };
    Ok((stats, from))
}
