//! Both noise predictors: parameter counts, PyTorch parity of the paper U-Net, shapes, gradients,
//! and train-versus-eval behaviour.

mod common;

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_ndarray::NdArray;
use burn_store::ModuleSnapshot;
use ddpm_unet::{
    DdpmUnet, DdpmUnetConfig, NoisePredictor, SimpleUnetConfig, UnetError, trainable_params,
};
use serde_json::Value;

use common::{fixture_inputs, fixtures, floats, load_json, relative_error, timesteps, usizes};

type B = NdArray<f32>;
type AD = burn::backend::Autodiff<B>;

fn fixture(name: &str) -> Value {
    load_json(&fixtures().join(name))
}

fn values<const D: usize, Bk: Backend>(tensor: Tensor<Bk, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

#[test]
fn simple_unet_has_the_seeds_62_438_883_parameters() {
    let model = SimpleUnetConfig::new()
        .init::<B>(&Default::default())
        .unwrap();
    assert_eq!(trainable_params(&model), 62_438_883);
    // burn's own count adds the BatchNorm running mean and variance: 2 per channel, 2 norms per
    // block, over blocks of 128, 256, 512, 1024 channels down and 512, 256, 128, 64 up.
    let running = 2 * 2 * (128 + 256 + 512 + 1024 + 512 + 256 + 128 + 64);
    assert_eq!(model.num_params(), 62_438_883 + running);
}

/// A model too large for the machine is refused by its count, before a weight is allocated
/// (allocating it would abort the process); the count of a real one matches burn's.
#[test]
fn a_model_too_large_for_memory_is_refused_before_allocation() {
    let seed = SimpleUnetConfig::new()
        .init::<B>(&Default::default())
        .unwrap();
    assert_eq!(
        ddpm_unet::lazy_tensor_elements(&seed),
        seed.num_params() as u64
    );
    let huge =
        ddpm_unet::DenoiserConfig::DdpmUnet(DdpmUnetConfig::new().with_base_channels(4_000_000));
    let err = huge.init::<B>(&Default::default()).unwrap_err();
    let UnetError::TooLarge {
        elements, bytes, ..
    } = err.clone()
    else {
        panic!("{err:?}");
    };
    assert!(
        elements > 1_000_000_000_000 && bytes == 4 * elements,
        "{err}"
    );
    assert!(err.to_string().contains("memory available"), "{err}");
}

#[test]
fn ddpm_unet_paper_config_has_35_746_307_parameters() {
    let model = DdpmUnetConfig::new()
        .init::<B>(&Default::default())
        .unwrap();
    let count = trainable_params(&model);
    assert_eq!(count, 35_746_307);
    assert_eq!(
        count as u64,
        fixture("ddpm_small.json")["paper_trainable_params"]
            .as_u64()
            .unwrap()
    );
    assert_eq!(model.size_multiple(), 8);
}

fn small_ddpm_config(fixture: &Value) -> DdpmUnetConfig {
    let c = &fixture["config"];
    DdpmUnetConfig::new()
        .with_image_channels(c["image_channels"].as_u64().unwrap() as usize)
        .with_image_size(c["image_size"].as_u64().unwrap() as usize)
        .with_base_channels(c["base_channels"].as_u64().unwrap() as usize)
        .with_channel_multipliers(usizes(&c["channel_multipliers"]))
        .with_num_res_blocks(c["num_res_blocks"].as_u64().unwrap() as usize)
        .with_attention_resolutions(usizes(&c["attention_resolutions"]))
        .with_dropout(c["dropout"].as_f64().unwrap())
        .with_norm_groups(c["norm_groups"].as_u64().unwrap() as usize)
}

#[test]
fn ddpm_unet_matches_pytorch_reference() {
    let fixture = fixture("ddpm_small.json");
    let device = Default::default();
    let pth = fixtures().join("ddpm_small.pth");
    let model: DdpmUnet<B> = small_ddpm_config(&fixture)
        .init(&device)
        .unwrap()
        .load_pytorch_checkpoint(&pth)
        .unwrap();
    assert_eq!(
        trainable_params(&model) as u64,
        fixture["trainable_params"].as_u64().unwrap()
    );

    let (x, t) = fixture_inputs::<B>(&fixture, &device);
    let error = relative_error(&values(model.forward(x, t)), &floats(&fixture["output"]));
    println!("small DdpmUnet, .pth import: relative error {error:e}");
    assert!(error <= 1e-4, "relative error {error}");

    // Safetensors round trip in the same layout.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ddpm.safetensors");
    model.save_safetensors(&path).unwrap();
    let back = small_ddpm_config(&fixture)
        .init::<B>(&device)
        .unwrap()
        .load_safetensors(&path)
        .unwrap();
    let x = Tensor::<B, 4>::random([1, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let t = timesteps::<B>(&[500], &device);
    assert_eq!(
        values(model.forward(x.clone(), t.clone())),
        values(back.forward(x, t))
    );
}

#[test]
fn output_has_the_input_shape_for_sizes_and_channel_counts() {
    let device = Default::default();
    for channels in [1, 3] {
        let simple = SimpleUnetConfig::new()
            .with_image_channels(channels)
            .with_channels(vec![4, 8, 16, 32, 64])
            .init::<B>(&device)
            .unwrap();
        assert_eq!(
            (simple.image_channels(), simple.size_multiple()),
            (channels, 16)
        );
        for size in [16, 32, 64] {
            let x = Tensor::<B, 4>::zeros([2, channels, size, size], &device);
            assert_eq!(
                simple.predict(x, timesteps::<B>(&[0, 299], &device)).dims(),
                [2, channels, size, size]
            );
        }
        // Three levels: sides must be multiples of 4, so MNIST's 28 works without padding.
        let paper = DdpmUnetConfig::new()
            .with_image_channels(channels)
            .with_image_size(28)
            .with_base_channels(8)
            .with_channel_multipliers(vec![1, 2, 2])
            .with_num_res_blocks(1)
            .with_attention_resolutions(vec![14])
            .with_norm_groups(4)
            .init::<B>(&device)
            .unwrap();
        assert_eq!(paper.size_multiple(), 4);
        for size in [16, 28, 32] {
            let x = Tensor::<B, 4>::zeros([2, channels, size, size], &device);
            assert_eq!(
                paper.predict(x, timesteps::<B>(&[0, 999], &device)).dims(),
                [2, channels, size, size]
            );
        }
    }
}

/// Every trainable tensor gets a gradient, and none of the running statistics.
fn assert_all_parameters_get_gradients<M>(model: &M, output: Tensor<AD, 4>)
where
    M: AutodiffModule<AD> + ModuleSnapshot<AD>,
{
    let grads = GradientsParams::from_grads(output.powi_scalar(2).mean().backward(), model);
    let trainable_tensors = model
        .collect(None, None, false)
        .iter()
        .filter(|t| !t.full_path().contains("running_"))
        .count();
    assert_eq!(grads.len(), trainable_tensors);
}

#[test]
fn both_models_run_forward_and_backward_on_autodiff() {
    let device = Default::default();
    let x = Tensor::<AD, 4>::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let t = timesteps::<AD>(&[10, 200], &device);
    let simple = SimpleUnetConfig::new()
        .with_channels(vec![4, 8, 16])
        .init::<AD>(&device)
        .unwrap();
    assert_all_parameters_get_gradients(&simple, simple.forward(x.clone(), t.clone()));
    let paper = DdpmUnetConfig::new()
        .with_image_size(16)
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_attention_resolutions(vec![8])
        .with_norm_groups(4)
        .init::<AD>(&device)
        .unwrap();
    assert_all_parameters_get_gradients(&paper, paper.forward(x, t));
}

#[test]
fn train_and_eval_differ_only_through_batchnorm_and_dropout() {
    let device = Default::default();
    let x = Tensor::<AD, 4>::random([4, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let t = timesteps::<AD>(&[1, 50, 100, 250], &device);
    let differs = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4);

    // BatchNorm: batch statistics in training, running statistics in eval.
    let simple = SimpleUnetConfig::new()
        .with_channels(vec![4, 8, 16])
        .init::<AD>(&device)
        .unwrap();
    let train = values(simple.forward(x.clone(), t.clone()));
    let eval = values(simple.valid().forward(x.clone().inner(), t.clone().inner()));
    assert!(
        differs(train, eval),
        "BatchNorm must use batch statistics in training"
    );

    let paper = |dropout: f64| {
        DdpmUnetConfig::new()
            .with_image_size(16)
            .with_base_channels(8)
            .with_channel_multipliers(vec![1, 2])
            .with_num_res_blocks(1)
            .with_attention_resolutions(vec![8])
            .with_norm_groups(4)
            .with_dropout(dropout)
            .init::<AD>(&device)
            .unwrap()
    };
    // GroupNorm behaves the same in both modes: without dropout, train equals eval.
    let no_dropout = paper(0.0);
    let train = values(no_dropout.forward(x.clone(), t.clone()));
    let eval = values(
        no_dropout
            .valid()
            .forward(x.clone().inner(), t.clone().inner()),
    );
    assert!(!differs(train, eval), "nothing but dropout may differ");
    // With dropout, training is stochastic and eval is not.
    let with_dropout = paper(0.1);
    let train = values(with_dropout.forward(x.clone(), t.clone()));
    let eval = values(
        with_dropout
            .valid()
            .forward(x.clone().inner(), t.clone().inner()),
    );
    let eval_again = values(with_dropout.valid().forward(x.inner(), t.inner()));
    assert!(differs(train, eval.clone()), "dropout must act in training");
    assert_eq!(eval, eval_again);
}

#[test]
fn bad_configs_are_errors() {
    let device = Default::default();
    let cases: Vec<(Result<(), UnetError>, &str)> = vec![
        (
            SimpleUnetConfig::new()
                .with_channels(vec![64])
                .init::<B>(&device)
                .map(drop),
            "channels",
        ),
        (
            SimpleUnetConfig::new()
                .with_time_embedding_dim(31)
                .init::<B>(&device)
                .map(drop),
            "time_embedding_dim",
        ),
        (
            SimpleUnetConfig::new()
                .with_image_channels(0)
                .init::<B>(&device)
                .map(drop),
            "image_channels",
        ),
        (
            DdpmUnetConfig::new()
                .with_norm_groups(24)
                .init::<B>(&device)
                .map(drop),
            "norm_groups",
        ),
        (
            DdpmUnetConfig::new()
                .with_channel_multipliers(vec![])
                .init::<B>(&device)
                .map(drop),
            "channel_multipliers",
        ),
        (
            DdpmUnetConfig::new()
                .with_dropout(1.5)
                .init::<B>(&device)
                .map(drop),
            "dropout",
        ),
    ];
    for (result, field) in cases {
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("invalid model config: ") && message.contains(field),
            "{message}"
        );
    }
}
