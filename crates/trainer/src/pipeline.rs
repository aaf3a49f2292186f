//! The sampling pipeline: a model, the table it computes with and a sampler, turned into
//! pictures. Training's sample grids and `ddpm sample` both go through it.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use ddpm_dataset::Channels;
use ddpm_dataset::picture::{image_to_tensor, save_png, tensor_to_images, tile};
use ddpm_ops::Ops;
use ddpm_schedule::{NoiseSchedule, Sampler};
use ddpm_unet::NoisePredictor;
use image::{DynamicImage, RgbImage};

use crate::TrainError;

/// White pixels between and around the pictures of a grid or a strip.
pub const GAP: u32 = 2;

/// What turns noise into images: `model` predicting through `ops`, stepped by `sampler`, at
/// `image_size` pixels square.
pub struct Pipeline<'a, B: Backend, M: NoisePredictor<B>> {
    /// The noise predictor.
    pub model: &'a M,
    /// The operations it computes with.
    pub ops: &'a Ops<B>,
    /// The reverse process.
    pub sampler: &'a dyn Sampler<B>,
    /// Side of the square images.
    pub image_size: usize,
}

impl<B: Backend, M: NoisePredictor<B>> Pipeline<'_, B, M> {
    /// `count` images sampled as one batch from the backend's random generator: the final state
    /// `[count, C, H, W]` in about `[-1, 1]`, preceded by about `snapshots` states of the reverse
    /// pass when `snapshots > 1` (the first being the starting noise).
    pub fn sample(&self, count: usize, snapshots: usize, device: &B::Device) -> Vec<Tensor<B, 4>> {
        let shape = [
            count,
            self.model.image_channels(),
            self.image_size,
            self.image_size,
        ];
        let predict = |x, t| self.model.predict_with(self.ops, x, t);
        ddpm_schedule::sample(self.sampler, predict, shape, snapshots, device)
    }

    /// `count` pictures sampled as one batch.
    pub fn images(
        &self,
        count: usize,
        device: &B::Device,
    ) -> Result<Vec<DynamicImage>, TrainError> {
        let last = self
            .sample(count, 1, device)
            .pop()
            .expect("the final state");
        Ok(tensor_to_images(last)?)
    }

    /// `count` images in batches of at most `batch`, each batch's final state `[n, C, H, W]`
    /// handed to `each` with the index of its first image as soon as it is sampled, so that
    /// memory holds one batch at a time.
    pub fn batches<E>(
        &self,
        count: usize,
        batch: usize,
        device: &B::Device,
        mut each: impl FnMut(usize, Tensor<B, 4>) -> Result<(), E>,
    ) -> Result<(), E> {
        let batch = batch.max(1);
        for first in (0..count).step_by(batch) {
            let last = self.sample(batch.min(count - first), 1, device).pop();
            each(first, last.expect("the final state"))?;
        }
        Ok(())
    }

    /// [`batches`](Self::batches) as pictures.
    pub fn in_batches(
        &self,
        count: usize,
        batch: usize,
        device: &B::Device,
        mut each: impl FnMut(usize, Vec<DynamicImage>) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        self.batches(count, batch, device, |first, images| {
            each(first, tensor_to_images(images)?)
        })
    }

    /// `count` pictures sampled `batch` at a time, each written into `dir` (if any) as
    /// `0000.png`, `0001.png`, … (more digits for more pictures) as soon as its batch is done;
    /// returns the first `keep`. `progress(done)` after each batch.
    #[allow(clippy::too_many_arguments)]
    pub fn write_pictures(
        &self,
        count: usize,
        batch: usize,
        dir: Option<&Path>,
        keep: usize,
        device: &B::Device,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<DynamicImage>, TrainError> {
        let output = |path: &Path, reason: String| TrainError::Output {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| output(dir, e.to_string()))?;
        }
        let digits = count.saturating_sub(1).to_string().len().max(4);
        let mut kept = Vec::new();
        self.in_batches(count, batch, device, |first, pictures| {
            for (i, picture) in pictures.iter().enumerate().filter(|_| dir.is_some()) {
                let path = dir
                    .expect("filtered")
                    .join(format!("{:0digits$}.png", first + i));
                save_png(&picture.to_rgb8(), &path).map_err(|e| output(&path, e.to_string()))?;
            }
            progress(first + pictures.len());
            let room = keep.saturating_sub(kept.len());
            kept.extend(pictures.into_iter().take(room));
            Ok(())
        })?;
        Ok(kept)
    }

    /// The reverse pass of one image: about `frames` pictures, noise to image.
    pub fn reverse_pass(
        &self,
        frames: usize,
        device: &B::Device,
    ) -> Result<Vec<DynamicImage>, TrainError> {
        let states = self.sample(1, frames, device);
        let mut pictures = Vec::with_capacity(states.len());
        for state in states {
            pictures.extend(tensor_to_images(state)?);
        }
        Ok(pictures)
    }
}

/// The forward process on one picture: the picture noised in closed form at each of
/// `timesteps`, as pictures, all from the backend's generator as it stands.
pub fn noised_frames<B: Backend>(
    picture: &DynamicImage,
    schedule: &NoiseSchedule,
    timesteps: &[usize],
    device: &B::Device,
) -> Result<Vec<DynamicImage>, TrainError> {
    let frames = timesteps.len();
    let x0 = image_to_tensor::<B>(picture, Channels::Rgb, device)
        .unsqueeze::<4>()
        .repeat_dim(0, frames);
    let t: Vec<i64> = timesteps.iter().map(|&t| t as i64).collect();
    let t = Tensor::<B, 1, Int>::from_data(TensorData::new(t, [frames]), device);
    let (x_t, _noise) = schedule.forward_process::<B>(device).q_sample(x0, t);
    Ok(tensor_to_images(x_t)?)
}

/// Pictures in one row.
pub fn strip(pictures: &[DynamicImage]) -> RgbImage {
    tile(pictures, pictures.len(), GAP)
}

/// Pictures in a square-ish grid, rows of `ceil(sqrt(n))`.
pub fn grid(images: &[DynamicImage]) -> RgbImage {
    let columns = (images.len() as f64).sqrt().ceil() as usize;
    tile(images, columns, GAP)
}
