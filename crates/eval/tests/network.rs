//! The FID Inception network against pytorch-fid's: features of real CIFAR-10 photos through
//! the shared weights, and the errors for files that are not the network's weights.

mod common;

use burn::tensor::Tensor;
use common::{B, fixture, floats, json, weights};
use ddpm_eval::{EvalError, FEATURES, FidInception, pixels};
use ddpm_flex::FlexKernels;
use ddpm_ops::Ops;

/// Through burn's operations and through ddpm-flex's kernels.
#[test]
fn features_of_cifar_photos_match_pytorch_fid() {
    let device = Default::default();
    for ops in [Ops::burn(), FlexKernels::default().inference()] {
        let inception = FidInception::<B>::load(&weights(), &device)
            .unwrap()
            .with_ops(ops);
        check_features(&inception);
    }
}

fn check_features(inception: &FidInception<B>) {
    let device = Default::default();
    let expected = json("features.json");
    let pictures: Vec<_> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| image::open(fixture(name.as_str().unwrap())).unwrap())
        .collect();
    let features: Tensor<B, 2> = inception.features(pixels(&pictures, &device));
    assert_eq!(features.dims(), [pictures.len(), FEATURES]);
    let ours = features.into_data().to_vec::<f32>().unwrap();
    for (image, reference) in expected["features"].as_array().unwrap().iter().enumerate() {
        let reference = floats(reference);
        let scale = reference.iter().fold(0f64, |max, v| max.max(v.abs()));
        let ours = &ours[image * FEATURES..][..FEATURES];
        let error = ours
            .iter()
            .zip(&reference)
            .fold(0f64, |max, (a, b)| max.max((*a as f64 - b).abs()));
        assert!(
            error <= 1e-4 * scale,
            "image {image}: largest error {error} at scale {scale}"
        );
    }
}

#[test]
fn missing_or_foreign_weights_are_named() {
    let device = Default::default();
    let missing = FidInception::<B>::load("no/such/file.pth".as_ref(), &device).unwrap_err();
    assert!(matches!(missing, EvalError::MissingWeights { .. }));
    let message = missing.to_string();
    assert!(
        message.contains("cargo xtask fetch-data inception")
            && message.contains("no/such/file.pth"),
        "{message}"
    );
    // Another network's weights: the unet crate's SimpleUnet fixture.
    let other =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../unet/tests/fixtures/seed_small.pth");
    let message = FidInception::<B>::load(&other, &device)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("seed_small.pth") && message.contains("Conv2d_1a_3x3"),
        "{message}"
    );
}

use std::path::PathBuf;
