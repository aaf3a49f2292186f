//! Batches: the batcher's pixel mapping, epoch shuffles, drop_last, resume, flips.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_ndarray::NdArray;
use ddpm_dataset::{
    Channels, ImageBatcher, ImageItem, ImageStore, LoaderOptions, epoch_batches,
    random_horizontal_flip,
};

type B = NdArray<f32>;

/// `n` 2x2 gray images whose every pixel is the image's index.
fn numbered_store(n: usize) -> Arc<ImageStore> {
    let mut store = ImageStore::new(Channels::Gray, 2);
    for i in 0..n {
        assert!(store.push(&[i as u8; 4]));
    }
    assert!(!store.push(&[0; 3]), "a wrongly sized image is refused");
    Arc::new(store)
}

/// Image indices of each batch of an epoch, read back from the pixels.
fn epoch_indices(
    store: &Arc<ImageStore>,
    options: &LoaderOptions,
    epoch: u64,
    skip: usize,
) -> Vec<Vec<usize>> {
    let loader = epoch_batches::<B>(store.clone(), options, epoch, skip, &Default::default());
    loader
        .iter()
        .map(|batch| {
            let values: Vec<f32> = batch.into_data().to_vec().unwrap();
            values
                .chunks(4)
                .map(|px| ((px[0] + 1.0) * 127.5).round() as usize)
                .collect()
        })
        .collect()
}

#[test]
fn batcher_maps_pixels_to_minus_one_one_in_nchw() {
    let batcher = ImageBatcher::new(3, 2);
    let item = ImageItem {
        pixels: vec![
            0, 255, 51, /* (0,1) */ 0, 0, 0, /* row 1 */ 0, 0, 0, 0, 0, 255,
        ],
    };
    let batch: Tensor<B, 4> = batcher.batch(vec![item.clone(), item], &Default::default());
    assert_eq!(batch.dims(), [2, 3, 2, 2]);
    let v: Vec<f32> = batch.into_data().to_vec().unwrap();
    // Channel 0 of pixel (0,0) is -1, channel 1 is 1, channel 2 is 51/127.5 - 1.
    assert_eq!(v[0], -1.0);
    assert_eq!(v[4], 1.0);
    assert!((v[8] - (51.0 / 127.5 - 1.0)).abs() < 1e-6);
    // Channel 2 of pixel (1,1) is 1.
    assert_eq!(v[11], 1.0);
}

#[test]
fn epochs_are_shuffled_by_seed_and_epoch_with_drop_last() {
    let store = numbered_store(10);
    let options = LoaderOptions {
        batch_size: 4,
        seed: 7,
        drop_last: true,
        workers: 0,
    };
    assert_eq!(options.batches_per_epoch(10), 2);
    let epoch0 = epoch_indices(&store, &options, 0, 0);
    assert_eq!(epoch0.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
    let mut seen: Vec<usize> = epoch0.concat();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8, "no image twice in an epoch");
    assert_eq!(
        epoch0,
        epoch_indices(&store, &options, 0, 0),
        "same seed and epoch, same order"
    );
    assert_ne!(
        epoch0,
        epoch_indices(&store, &options, 1, 0),
        "each epoch its own order"
    );
    let other_seed = LoaderOptions { seed: 8, ..options };
    assert_ne!(epoch0, epoch_indices(&store, &other_seed, 0, 0));

    let keep_last = LoaderOptions {
        drop_last: false,
        ..options
    };
    assert_eq!(keep_last.batches_per_epoch(10), 3);
    let sizes: Vec<usize> = epoch_indices(&store, &keep_last, 0, 0)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [4, 4, 2]);
}

#[test]
fn resuming_mid_epoch_yields_the_remaining_batches() {
    let store = numbered_store(13);
    let options = LoaderOptions {
        batch_size: 3,
        seed: 1,
        drop_last: true,
        workers: 0,
    };
    let full = epoch_indices(&store, &options, 5, 0);
    assert_eq!(full.len(), 4);
    assert_eq!(epoch_indices(&store, &options, 5, 1), full[1..]);
    assert_eq!(epoch_indices(&store, &options, 5, 3), full[3..]);
    assert!(epoch_indices(&store, &options, 5, 4).is_empty());
}

#[test]
fn workers_deliver_the_same_batches() {
    let store = numbered_store(20);
    let serial = LoaderOptions {
        batch_size: 4,
        seed: 3,
        drop_last: true,
        workers: 0,
    };
    let parallel = LoaderOptions {
        workers: 2,
        ..serial
    };
    let mut a = epoch_indices(&store, &serial, 0, 0);
    let mut b = epoch_indices(&store, &parallel, 0, 0);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn random_flip_mirrors_some_images_and_keeps_the_rest() {
    let device = Default::default();
    B::seed(&device, 11);
    let n = 64;
    let rows: Vec<f32> = (0..n).flat_map(|_| [0.0, 1.0, 2.0]).collect();
    let batch = Tensor::<B, 4>::from_data(TensorData::new(rows, [n, 1, 1, 3]), &device);
    let out: Vec<f32> = random_horizontal_flip(batch).into_data().to_vec().unwrap();
    let flipped = out.chunks(3).filter(|r| r == &[2.0, 1.0, 0.0]).count();
    let kept = out.chunks(3).filter(|r| r == &[0.0, 1.0, 2.0]).count();
    assert_eq!(flipped + kept, n);
    assert!(flipped > 16 && kept > 16, "flipped {flipped} of {n}");
}
