//! Both models computed through the flex tables against burn-ndarray's own operations (which
//! the unet crate's tests check against PyTorch): a training pass (output, input gradient and
//! every parameter's gradient) and SimpleUnet's inference.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn_ndarray::NdArray;
use ddpm_flex::{Flex, FlexAutodiff, FlexKernels};
use ddpm_ops::Ops;
use ddpm_unet::{DdpmUnet, DdpmUnetConfig, NoisePredictor, SimpleUnet, SimpleUnetConfig};

type Ndarray = NdArray<f32>;
type NdarrayAutodiff = Autodiff<Ndarray>;

/// Every parameter's gradient, in visiting order.
struct CollectGrads<'a, K: AutodiffBackend> {
    grads: &'a K::Gradients,
    collected: Vec<Vec<f32>>,
}

impl<K: AutodiffBackend> ModuleVisitor<K> for CollectGrads<'_, K> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<K, D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.collected.push(grad.into_data().to_vec().unwrap());
        }
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../unet/tests/fixtures")
}

/// The unet crate's small SimpleUnet fixture.
fn simple_unet<K: Backend>() -> SimpleUnet<K> {
    SimpleUnetConfig::new()
        .with_channels(vec![4, 8, 16, 32])
        .init(&Default::default())
        .unwrap()
        .load_safetensors(&fixtures().join("seed_small.safetensors"))
        .unwrap()
}

/// The unet crate's small DdpmUnet fixture, without dropout (random, so backend-specific).
fn paper_unet<K: Backend>() -> DdpmUnet<K> {
    DdpmUnetConfig::new()
        .with_image_size(16)
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_num_res_blocks(1)
        .with_attention_resolutions(vec![8])
        .with_dropout(0.0)
        .with_norm_groups(4)
        .init(&Default::default())
        .unwrap()
        .load_pytorch_checkpoint(&fixtures().join("ddpm_small.pth"))
        .unwrap()
}

/// A paper U-Net wide enough that its 16×16 convolutions take ddpm-flex's Winograd kernels (64
/// channels), its parameters set to fixed values.
fn wide_paper_unet<K: Backend>() -> DdpmUnet<K> {
    DdpmUnetConfig::new()
        .with_image_size(16)
        .with_base_channels(64)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_attention_resolutions(vec![])
        .with_dropout(0.0)
        .with_norm_groups(8)
        .init(&Default::default())
        .unwrap()
        .map(&mut FixedValues)
}

/// Sets every parameter to fixed values, the same on every backend: weights within ±√(3 / fan-in)
/// (activations keep their scale), vectors (biases, norm scales) within ±½.
struct FixedValues;

impl<K: Backend> ModuleMapper<K> for FixedValues {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<K, D>>) -> Param<Tensor<K, D>> {
        let (id, tensor, mapper) = param.consume();
        let (dims, count) = (tensor.dims(), tensor.shape().num_elements());
        let fixed: Vec<f32> = match D {
            1 => values(count, 0.5).collect(),
            _ => values(count, (3.0 / (count / dims[0]) as f32).sqrt()).collect(),
        };
        let fixed = Tensor::from_data(TensorData::new(fixed, dims), &tensor.device())
            .set_require_grad(tensor.is_require_grad());
        Param::from_mapped_value(id, fixed, mapper)
    }
}

/// Fixed values in [-scale, scale).
fn values(count: usize, scale: f32) -> impl Iterator<Item = f32> {
    (0..count).map(move |i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * scale)
}

/// A training-mode pass of `model` on a fixed batch of two 3×16×16 images through `ops`: the
/// output, the input gradient and every parameter's gradient under a weighted-sum loss.
fn training_pass<K, M>(model: M, ops: &Ops<K>) -> Vec<Vec<f32>>
where
    K: AutodiffBackend,
    M: Module<K> + NoisePredictor<K>,
{
    let device = Default::default();
    let x = TensorData::new(values(2 * 3 * 16 * 16, 1.0).collect(), [2, 3, 16, 16]);
    let x = Tensor::<K, 4>::from_data(x, &device).require_grad();
    let t = Tensor::from_data(TensorData::new(vec![5i64, 250], [2]), &device);
    let output = model.predict_with(ops, x.clone(), t);
    let loss_weights = values(output.shape().num_elements(), 0.5).collect();
    let loss_weights = Tensor::from_data(TensorData::new(loss_weights, output.dims()), &device);
    let grads = (output.clone() * loss_weights).sum().backward();
    let mut collect = CollectGrads::<K> {
        grads: &grads,
        collected: vec![output.into_data().to_vec().unwrap()],
    };
    collect
        .collected
        .push(x.grad(&grads).unwrap().into_data().to_vec().unwrap());
    model.visit(&mut collect);
    collect.collected
}

/// The largest |ours − reference| and the largest |reference|.
fn error_and_scale(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |max, v| max.max(v.abs()));
    let error = ours
        .iter()
        .zip(reference)
        .fold(0f32, |max, (a, b)| max.max((a - b).abs()));
    (error, scale)
}

/// Each tensor of `ours` within 1e-4 of its largest magnitude in `reference`, plus 1e-6 of the
/// largest magnitude of all: some gradients are zero in exact arithmetic (the attention key's bias:
/// softmax ignores a constant per query), so only rounding noise, which differs.
fn assert_passes_match(ours: Vec<Vec<f32>>, reference: Vec<Vec<f32>>) {
    assert_eq!(ours.len(), reference.len());
    assert!(
        ours.len() > 30,
        "output, input gradient and the parameters' gradients"
    );
    let scales: Vec<(f32, f32)> = ours
        .iter()
        .zip(&reference)
        .map(|(ours, reference)| error_and_scale(ours, reference))
        .collect();
    let floor = 1e-6 * scales.iter().fold(0f32, |max, &(_, scale)| max.max(scale));

    for (index, (error, scale)) in scales.into_iter().enumerate() {
        assert!(
            error <= 1e-4 * scale + floor,
            "tensor {index}: error {error} at scale {scale}"
        );
    }
}

/// Against ndarray's table as the binary runs it (burn's operations, narrow deep layers
/// gathered).
#[test]
fn training_passes_of_both_models_match_ndarrays() {
    let flex = FlexKernels::default().training().training;
    let ndarray = Ops::<NdarrayAutodiff>::burn().with_gathering();
    let ours = training_pass(simple_unet::<FlexAutodiff>(), &flex);
    assert_passes_match(
        ours,
        training_pass(simple_unet::<NdarrayAutodiff>(), &ndarray),
    );
    let ours = training_pass(paper_unet::<FlexAutodiff>(), &flex);
    assert_passes_match(
        ours,
        training_pass(paper_unet::<NdarrayAutodiff>(), &ndarray),
    );
}

/// The Winograd kernels (3×3 layers of 64 channels on 16×16 maps) in a whole training pass.
#[test]
fn winograd_layers_match_ndarrays_in_a_training_pass() {
    let flex = FlexKernels::default().training().training;
    let ndarray = Ops::<NdarrayAutodiff>::burn().with_gathering();
    let ours = training_pass(wide_paper_unet::<FlexAutodiff>(), &flex);
    assert_passes_match(
        ours,
        training_pass(wide_paper_unet::<NdarrayAutodiff>(), &ndarray),
    );
}

/// ndarray's gathering table against its plain one: the same values up to summation order.
#[test]
fn gathering_on_ndarray_matches_burns_convolutions() {
    let gathered = Ops::<NdarrayAutodiff>::burn().with_gathering();
    let ours = training_pass(simple_unet::<NdarrayAutodiff>(), &gathered);
    let burn = Ops::<NdarrayAutodiff>::burn();
    assert_passes_match(ours, training_pass(simple_unet::<NdarrayAutodiff>(), &burn));
}

/// Both models' predictions (SimpleUnet in inference mode: running statistics) through the flex
/// inference table against burn-ndarray's.
#[test]
fn predictions_of_both_models_match_ndarrays() {
    fn predict<K: Backend, M: NoisePredictor<K>>(model: M, ops: &Ops<K>) -> Vec<f32> {
        let device = Default::default();
        let x = TensorData::new(values(2 * 3 * 16 * 16, 1.0).collect(), [2, 3, 16, 16]);
        let t = Tensor::from_data(TensorData::new(vec![5i64, 250], [2]), &device);
        let output = model.predict_with(ops, Tensor::from_data(x, &device), t);
        output.into_data().to_vec().unwrap()
    }
    let flex = FlexKernels::default().inference();
    let pairs = [
        (
            predict(simple_unet::<Flex>(), &flex),
            predict(simple_unet::<Ndarray>(), &Ops::burn()),
        ),
        (
            predict(paper_unet::<Flex>(), &flex),
            predict(paper_unet::<Ndarray>(), &Ops::burn()),
        ),
    ];
    for (ours, reference) in pairs {
        let (error, scale) = error_and_scale(&ours, &reference);
        assert!(
            scale > 0.0 && error <= 1e-5 * scale,
            "error {error} at scale {scale}"
        );
    }
}
