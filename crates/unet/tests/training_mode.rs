//! A training-mode pass of the seed's SimpleUnet against PyTorch's: BatchNorm's batch statistics
//! in the output, its running-statistics update and the gradients (fixture written by
//! `xtask/scripts/simple_unet_fixture.py`).

mod common;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn_ndarray::NdArray;
use burn_store::ModuleSnapshot;
use ddpm_unet::{SimpleUnet, SimpleUnetConfig};

use common::{fixture_inputs, fixtures, floats, load_json, relative_error, usizes};

type B = NdArray<f32>;
type AD = burn::backend::Autodiff<B>;

/// PyTorch names a norm's affine parameters weight/bias; burn names them gamma/beta.
fn burn_path(pytorch_key: &str) -> String {
    match pytorch_key.rsplit_once('.') {
        Some((module, "weight")) if module.contains("bnorm") => format!("{module}.gamma"),
        Some((module, "bias")) if module.contains("bnorm") => format!("{module}.beta"),
        _ => pytorch_key.to_string(),
    }
}

#[test]
fn a_training_step_matches_pytorch() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let training = &fixture["training"];
    let device = Default::default();
    let model: SimpleUnet<AD> = SimpleUnetConfig::new()
        .with_channels(usizes(&fixture["channels"]))
        .init(&device)
        .unwrap()
        .load_seed_checkpoint(&fixtures().join("seed_small.pth"))
        .unwrap();
    let (x, t) = fixture_inputs::<AD>(&fixture, &device);

    // As the binary runs it on ndarray: burn's operations, narrow deep layers gathered.
    let output = model.forward_with(&ddpm_ops::Ops::burn().with_gathering(), x, t);
    let ours: Vec<f32> = output.clone().into_data().to_vec().unwrap();
    let error = relative_error(&ours, &floats(&training["output"]));
    println!("training-mode output: relative error {error:e}");
    assert!(
        error <= 1e-4,
        "training-mode output: relative error {error}"
    );

    let grads = GradientsParams::from_grads(output.powi_scalar(2).mean().backward(), &model);
    // `valid()` folds the pass's running-statistics update in (burn applies it lazily).
    let snapshots = model.valid().collect(None, None, false);
    let snapshot = |path: &str| {
        snapshots
            .iter()
            .find(|s| s.full_path() == path)
            .unwrap_or_else(|| panic!("no tensor {path}"))
    };

    let running = training["running"].as_object().unwrap();
    assert!(running.len() >= 12, "every norm's mean and variance");
    for (key, reference) in running {
        let ours: Vec<f32> = snapshot(key).to_data().unwrap().to_vec().unwrap();
        let error = relative_error(&ours, &floats(reference));
        assert!(
            error <= 1e-5,
            "{key} after one pass: relative error {error}"
        );
    }

    let expected = training["grads"].as_object().unwrap();
    assert!(expected.len() >= 14, "every norm's gamma and beta, conv0");
    let mut worst = 0f64;
    for (key, reference) in expected {
        let id = snapshot(&burn_path(key)).tensor_id.unwrap();
        let ours: Vec<f32> = match grads.get::<B, 1>(id) {
            Some(grad) => grad.into_data().to_vec().unwrap(),
            None => grads
                .get::<B, 4>(id)
                .unwrap_or_else(|| panic!("no gradient for {key}"))
                .into_data()
                .to_vec()
                .unwrap(),
        };
        let error = relative_error(&ours, &floats(reference));
        worst = worst.max(error);
        assert!(error <= 1e-4, "gradient of {key}: relative error {error}");
    }
    println!("gradients: worst relative error {worst:e}");
}
