//! Statistics of image files and of model outputs, batch by batch through the network.

use std::path::PathBuf;

use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};
use ddpm_dataset::list_images;
use ddpm_dataset::picture::open_image;
use image::DynamicImage;

use crate::{EvalError, FEATURES, FeatureAccumulator, FeatureStats, FidInception, pixels};

/// Images through the network at once: pytorch-fid's default batch (activations at 299×299 take
/// about 20 MB an image).
pub const NETWORK_BATCH: usize = 50;

/// Feature vectors kept for KID by default: enough for torch-fidelity's subsets of 1,000, while
/// memory stays bounded (80 MB) however many images are evaluated.
pub const KID_SAMPLE: usize = 10_000;

impl<B: Backend> FidInception<B> {
    /// A new accumulator of this network's features, keeping [`KID_SAMPLE`] of them (drawn from
    /// `seed`).
    pub fn accumulator(&self, seed: u64) -> FeatureAccumulator {
        FeatureAccumulator::new(FEATURES, KID_SAMPLE, seed)
    }

    /// Adds the features of pixel values `[N, 3, H, W]` (in `0..=255`) to `accumulator`,
    /// [`NETWORK_BATCH`] images at a time.
    pub fn add_pixels(&self, accumulator: &mut FeatureAccumulator, pixels: Tensor<B, 4>) {
        let count = pixels.dims()[0];
        for first in (0..count).step_by(NETWORK_BATCH) {
            let chunk = pixels
                .clone()
                .narrow(0, first, NETWORK_BATCH.min(count - first));
            let features = self.features(chunk).into_data().convert::<f32>();
            accumulator.add(features.as_slice::<f32>().expect("converted to f32"));
        }
    }

    /// Adds the features of `pictures` (any sizes; those of one size go through together).
    pub fn add_pictures(
        &self,
        accumulator: &mut FeatureAccumulator,
        pictures: &[DynamicImage],
        device: &B::Device,
    ) {
        for run in pictures.chunk_by(|a, b| a.dimensions_eq(b)) {
            self.add_pixels(accumulator, pixels(run, device));
        }
    }

    /// The features of image files, read and passed through the network `batch` at a time;
    /// `progress(done, total)` after each batch.
    pub fn add_files(
        &self,
        accumulator: &mut FeatureAccumulator,
        files: &[PathBuf],
        batch: usize,
        device: &B::Device,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(), EvalError> {
        for (index, chunk) in files.chunks(batch.max(1)).enumerate() {
            let pictures = chunk
                .iter()
                .map(|file| open_image(file))
                .collect::<Result<Vec<_>, _>>()?;
            self.add_pictures(accumulator, &pictures, device);
            progress(
                (index * batch.max(1) + chunk.len()).min(files.len()),
                files.len(),
            );
        }
        Ok(())
    }
}

impl<B: Backend> FidInception<B> {
    /// The statistics of the images in `dir` (read recursively), their features' sample drawn
    /// from `seed`; `progress(done, total)` after each batch.
    pub fn folder_stats(
        &self,
        dir: &Path,
        seed: u64,
        device: &B::Device,
        progress: impl FnMut(usize, usize),
    ) -> Result<FeatureStats, EvalError> {
        let files = list_images(dir)?;
        if files.len() < 2 {
            return Err(EvalError::TooFewImages {
                what: "FID",
                needed: 2,
                got: files.len(),
            });
        }
        let mut accumulator = self.accumulator(seed);
        self.add_files(&mut accumulator, &files, NETWORK_BATCH, device, progress)?;
        Ok(accumulator.finish())
    }
}

/// Equal sizes.
trait SameSize {
    fn dimensions_eq(&self, other: &Self) -> bool;
}

impl SameSize for DynamicImage {
    fn dimensions_eq(&self, other: &Self) -> bool {
        (self.width(), self.height()) == (other.width(), other.height())
    }
}
