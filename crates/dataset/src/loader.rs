//! One epoch's batches: shuffled by (seed, epoch), the last short batch dropped, resumable.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};
use burn::tensor::{Tensor, backend::Backend};

use crate::{ImageBatcher, ImageItem, ImageStore};

/// How batches are drawn from an [`ImageStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the shuffles; epoch `e` is shuffled with a seed derived from `(seed, e)`.
    pub seed: u64,
    /// Drop the last batch of an epoch when it is short (the seed's `drop_last=True`).
    pub drop_last: bool,
    /// Worker threads assembling batches (0: on the calling thread).
    pub workers: usize,
}

impl LoaderOptions {
    /// Full batches per epoch of `len` images (plus a short one when not `drop_last`).
    pub fn batches_per_epoch(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }
}

/// The batches of epoch `epoch`, starting after `skip_batches` of them (to resume mid-epoch).
///
/// Each epoch has its own permutation, a function of `(seed, epoch)` alone, so a resumed run sees
/// exactly the batches an uninterrupted one would. Burn's data loader has no `drop_last`: the
/// shuffled view is cut to whole batches here, before it reaches the loader.
pub fn epoch_batches<B: Backend>(
    store: Arc<ImageStore>,
    options: &LoaderOptions,
    epoch: u64,
    skip_batches: usize,
    device: &B::Device,
) -> Arc<dyn DataLoader<B, Tensor<B, 4>>> {
    let len = store.len();
    let batcher = ImageBatcher::new(store.channels().count(), store.size());
    let epoch_seed = options.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let shuffled = ShuffledDataset::<_, ImageItem>::new(store, epoch_seed);
    let end = if options.drop_last {
        len - len % options.batch_size
    } else {
        len
    };
    let start = (skip_batches * options.batch_size).min(end);
    let epoch_view = PartialDataset::new(shuffled, start, end);
    let mut builder = DataLoaderBuilder::new(batcher)
        .batch_size(options.batch_size)
        .set_device(device.clone());
    if options.workers > 0 {
        builder = builder.num_workers(options.workers);
    }
    builder.build(epoch_view)
}
