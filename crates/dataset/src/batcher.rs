//! Batches of images as `[N, C, H, W]` tensors in `[-1, 1]`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};

use crate::ImageItem;

/// Stacks [`ImageItem`]s of one [`ImageStore`](crate::ImageStore) into a `[N, C, S, S]` batch
/// with pixels mapped linearly from `0..=255` to `[-1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBatcher {
    channels: usize,
    size: usize,
}

impl ImageBatcher {
    /// A batcher for `size × size` images with `channels` channels.
    pub fn new(channels: usize, size: usize) -> Self {
        Self { channels, size }
    }
}

impl<B: Backend> Batcher<B, ImageItem, Tensor<B, 4>> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &B::Device) -> Tensor<B, 4> {
        let n = items.len();
        let pixels: Vec<f32> = items
            .iter()
            .flat_map(|item| item.pixels.iter().map(|&p| p as f32))
            .collect();
        let data = TensorData::new(pixels, [n, self.size, self.size, self.channels]);
        Tensor::<B, 4>::from_data(data, device).permute([0, 3, 1, 2]) / 127.5 - 1.0
    }
}

/// Flips each image of a `[N, C, H, W]` batch left-right with probability 1/2, on the device,
/// drawing from the backend's (seeded) generator.
pub fn random_horizontal_flip<B: Backend>(batch: Tensor<B, 4>) -> Tensor<B, 4> {
    let n = batch.dims()[0];
    let flip = Tensor::<B, 4>::random([n, 1, 1, 1], Distribution::Bernoulli(0.5), &batch.device());
    let flipped = batch.clone().flip([3]);
    // A 0/1 blend is exact and broadcasts on every backend (ndarray's mask_where does not).
    batch * (flip.clone().neg() + 1.0) + flipped * flip
}
