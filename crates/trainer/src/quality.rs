//! The FID statistics of a model's samples: what `ddpm eval` and training's periodic FID take.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use ddpm_dataset::{DataSource, read_idx_images};
use ddpm_eval::{FeatureStats, FidInception, NETWORK_BATCH, pixels, quantize};
use ddpm_ops::Ops;
use ddpm_schedule::SamplerConfig;
use ddpm_unet::NoisePredictor;
use image::{DynamicImage, GrayImage};
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

/// The statistics of a data source's images: a folder's files as pytorch-fid reads them, or
/// MNIST's IDX digits as the same 28×28 gray pictures saved to PNG would be read. Their features'
/// sample for KID is drawn from `seed`; `progress(done, total)` after each batch.
pub fn source_stats<B: Backend>(
    inception: &FidInception<B>,
    source: &DataSource,
    seed: u64,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<FeatureStats, TrainError> {
    let (dir, split) = match source {
        DataSource::Folder(dir) => return Ok(inception.folder_stats(dir, seed, device, progress)?),
        DataSource::Mnist { dir, split } => (dir, *split),
    };
    let path = ddpm_dataset::mnist_images_path(dir, split).expect("detected by its files");
    let idx = read_idx_images(&path)?;
    let mut accumulator = inception.accumulator(seed);
    let image_bytes = idx.rows * idx.cols;
    for chunk in idx.pixels.chunks(image_bytes * NETWORK_BATCH) {
        let pictures: Vec<DynamicImage> = chunk
            .chunks_exact(image_bytes)
            .map(|digit| {
                let gray = GrayImage::from_raw(idx.cols as u32, idx.rows as u32, digit.to_vec());
                DynamicImage::ImageLuma8(gray.expect("rows × cols bytes"))
            })
            .collect();
        inception.add_pixels(&mut accumulator, pixels(&pictures, device));
        progress(accumulator.count(), idx.count);
    }
    Ok(accumulator.finish())
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
