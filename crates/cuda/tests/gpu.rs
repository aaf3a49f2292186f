//! The GPU kernels against burn-flex on the CPU and burn's own operations on cuda: each
//! convolution pass and the attention, values and gradients, odd shapes, f32 (TF32 products)
//! and bf16 within their tolerances; a training pass of both fixture models; and one Adam step
//! of each model through the trainer.
//!
//! They need a CUDA GPU with cuDNN and cuBLAS, so they are ignored by default; run them there
//! with `cargo test -p ddpm-cuda --test gpu -- --ignored` (or the test binary, built here with
//! `cargo test --no-run`, with `--ignored`).

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{Tensor, TensorData};
use burn_flex::Flex;
use ddpm_cuda::{CudaKernels, GpuAutodiff, GpuDevice, GpuKernels};
use ddpm_ops::{KernelTables, Ops, Precision};
use ddpm_unet::{DdpmUnet, DdpmUnetConfig, NoisePredictor, SimpleUnet, SimpleUnetConfig};

type Cpu = Autodiff<Flex<f32>>;

/// The training table of `kernels` in `precision`.
fn table(kernels: GpuKernels, precision: Precision) -> Ops<GpuAutodiff> {
    let tables = CudaKernels {
        kernels,
        gathering: false,
    };
    tables.training(precision).expect("a GPU table").training
}

/// Both library-backed kernel sets in both precisions, with the tolerance (of the reference's
/// largest magnitude) each is held to: TF32 products keep 10 bits, bf16 8.
fn cases() -> Vec<(GpuKernels, Precision, f32)> {
    let mut cases = Vec::new();
    for kernels in [GpuKernels::Cudnn, GpuKernels::Fixed] {
        cases.push((kernels, Precision::F32, 5e-3));
        cases.push((kernels, Precision::Bf16, 4e-2));
    }
    cases
}

/// Fixed values in [-scale, scale).
fn values(count: usize, scale: f32) -> Vec<f32> {
    (0..count)
        .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * scale)
        .collect()
}

fn tensor<K: Backend, const D: usize>(
    shape: [usize; D],
    scale: f32,
    device: &K::Device,
) -> Tensor<K, D> {
    let count = shape.iter().product();
    Tensor::from_data(TensorData::new(values(count, scale), shape), device)
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

fn assert_close(what: &str, ours: &[Vec<f32>], reference: &[Vec<f32>], tolerance: f32) {
    assert_eq!(ours.len(), reference.len());
    for (index, (ours, reference)) in ours.iter().zip(reference).enumerate() {
        let (error, scale) = error_and_scale(ours, reference);
        assert!(
            scale > 0.0 && error <= tolerance * scale,
            "{what}, tensor {index}: error {error} at scale {scale}"
        );
    }
}

fn to_vec<K: Backend, const D: usize>(tensor: Tensor<K, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

/// A layer's output and the gradients of its operands under a loss that weighs every output
/// differently.
fn layer_pass<K: AutodiffBackend>(
    device: &K::Device,
    shapes: &[Vec<usize>],
    layer: impl Fn(&[Tensor<K, 4>]) -> Tensor<K, 4>,
) -> Vec<Vec<f32>> {
    let operands: Vec<Tensor<K, 4>> = shapes
        .iter()
        .map(|shape| {
            let shape: [usize; 4] = shape.clone().try_into().unwrap();
            tensor::<K, 4>(shape, 1.0, device).require_grad()
        })
        .collect();
    let output = layer(&operands);
    let weights = tensor::<K, 4>(output.dims(), 0.5, device);
    let grads = (output.clone() * weights).sum().backward();
    let mut all = vec![to_vec(output)];
    for operand in &operands {
        all.push(to_vec(operand.grad(&grads).expect("a gradient")));
    }
    all
}

/// Convolution layers of odd shapes: strided, padded, asymmetric padding, dilated, grouped,
/// a bias, one input channel, 3×3 and 4×4 kernels.
fn convolutions() -> Vec<([usize; 4], [usize; 4], PaddedConvOptions<2>, bool)> {
    vec![
        (
            [3, 5, 9, 7],
            [6, 5, 3, 3],
            PaddedConvOptions::asymmetric([1, 1], [1, 1], [1, 1], [1, 1], 1),
            true,
        ),
        (
            [2, 1, 16, 16],
            [8, 1, 3, 3],
            PaddedConvOptions::asymmetric([1, 1], [1, 1], [1, 1], [1, 1], 1),
            true,
        ),
        (
            [2, 8, 10, 10],
            [16, 8, 4, 4],
            PaddedConvOptions::asymmetric([2, 2], [1, 1], [1, 1], [1, 1], 1),
            false,
        ),
        (
            [2, 6, 9, 9],
            [6, 6, 3, 3],
            PaddedConvOptions::asymmetric([2, 2], [0, 0], [1, 1], [1, 1], 1),
            true,
        ),
        (
            [1, 4, 11, 11],
            [4, 4, 3, 3],
            PaddedConvOptions::asymmetric([1, 1], [2, 2], [2, 2], [2, 2], 1),
            false,
        ),
        (
            [2, 8, 6, 6],
            [12, 4, 3, 3],
            PaddedConvOptions::asymmetric([1, 1], [1, 1], [1, 1], [1, 1], 2),
            true,
        ),
    ]
}

#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn convolutions_match_flex_in_values_and_gradients() {
    let gpu = GpuDevice::default();
    for (x, w, options, bias) in convolutions() {
        let mut shapes = vec![x.to_vec(), w.to_vec()];
        if bias {
            shapes.push(vec![1, 1, 1, w[0]]);
        }
        let run = |ops: Ops<GpuAutodiff>| {
            layer_pass::<GpuAutodiff>(&gpu, &shapes, |t| {
                let bias = t.get(2).map(|b| b.clone().reshape([w[0]]));
                (ops.conv2d)(t[0].clone(), t[1].clone(), bias, options.clone())
            })
        };
        let reference = layer_pass::<Cpu>(&Default::default(), &shapes, |t| {
            let bias = t.get(2).map(|b| b.clone().reshape([w[0]]));
            burn::tensor::module::conv2d(t[0].clone(), t[1].clone(), bias, options.clone())
        });
        for (kernels, precision, tolerance) in cases() {
            let what = format!("{kernels} {precision} conv {x:?} * {w:?}");
            assert_close(
                &what,
                &run(table(kernels, precision)),
                &reference,
                tolerance,
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn transposed_convolutions_match_flex_in_values_and_gradients() {
    let gpu = GpuDevice::default();
    let layers = [
        // The seed's upsampling (4×4, stride 2), an odd one with output padding, a grouped one.
        (
            [2, 16, 8, 8],
            [16, 8, 4, 4],
            ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
        ),
        (
            [3, 5, 5, 7],
            [5, 3, 3, 3],
            ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1),
        ),
        (
            [2, 8, 6, 6],
            [8, 2, 3, 3],
            ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 2),
        ),
    ];
    for (x, w, options) in layers {
        let shapes = vec![x.to_vec(), w.to_vec()];
        let reference = layer_pass::<Cpu>(&Default::default(), &shapes, |t| {
            burn::tensor::module::conv_transpose2d(
                t[0].clone(),
                t[1].clone(),
                None,
                options.clone(),
            )
        });
        for (kernels, precision, tolerance) in cases() {
            let ops = table(kernels, precision);
            let ours = layer_pass::<GpuAutodiff>(&gpu, &shapes, |t| {
                (ops.conv_transpose2d)(t[0].clone(), t[1].clone(), None, options.clone())
            });
            let what = format!("{kernels} {precision} transposed {x:?} * {w:?}");
            assert_close(&what, &ours, &reference, tolerance);
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn attention_matches_flex_in_values_and_gradients() {
    let gpu = GpuDevice::default();
    for [n, c, l] in [[2, 8, 5], [3, 16, 64], [1, 32, 7]] {
        let shapes = vec![vec![n, c, l, 1]; 3];
        let reference = layer_pass::<Cpu>(
            &Default::default(),
            &shapes,
            attend(&Ops::burn(), [n, c, l]),
        );
        for (kernels, precision, tolerance) in cases() {
            let ops = table(kernels, precision);
            let ours = layer_pass::<GpuAutodiff>(&gpu, &shapes, attend(&ops, [n, c, l]));
            let what = format!("{kernels} {precision} attention [{n}, {c}, {l}]");
            assert_close(&what, &ours, &reference, tolerance);
        }
    }
}

/// The attention of `[n, c, l]` operands stored as `[n, c, l, 1]` (the keys halved, so that the
/// scores are not symmetric).
fn attend<K: Backend>(
    ops: &Ops<K>,
    [n, c, l]: [usize; 3],
) -> impl Fn(&[Tensor<K, 4>]) -> Tensor<K, 4> + '_ {
    move |t| {
        let [q, k, v] = [0, 1, 2].map(|i| t[i].clone().reshape([n, c, l]));
        (ops.attention)(q, k.mul_scalar(0.5), v).reshape([n, c, l, 1])
    }
}

/// The library kernels against burn-cuda's own (autotuned) operations on the seed's 3×3 layer.
#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn convolutions_match_burn_cudas_own() {
    let gpu = GpuDevice::default();
    let options = PaddedConvOptions::asymmetric([1, 1], [1, 1], [1, 1], [1, 1], 1);
    let shapes = vec![vec![4, 32, 16, 16], vec![64, 32, 3, 3]];
    let run = |ops: Ops<GpuAutodiff>| {
        layer_pass::<GpuAutodiff>(&gpu, &shapes, |t| {
            (ops.conv2d)(t[0].clone(), t[1].clone(), None, options.clone())
        })
    };
    let burns = run(table(GpuKernels::Tuned, Precision::F32));
    for kernels in [GpuKernels::Cudnn, GpuKernels::Fixed] {
        let what = format!("{kernels} against burn-cuda's");
        assert_close(&what, &run(table(kernels, Precision::F32)), &burns, 5e-3);
    }
}

/// The unet crate's fixtures: where this test was built, else below the working folder (a
/// test binary carried to a GPU machine runs from the repository's root there).
fn fixtures() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../unet/tests/fixtures");
    match built.is_dir() {
        true => built,
        false => PathBuf::from("crates/unet/tests/fixtures"),
    }
}

fn simple_unet<K: Backend>(device: &K::Device) -> SimpleUnet<K> {
    SimpleUnetConfig::new()
        .with_channels(vec![4, 8, 16, 32])
        .init(device)
        .unwrap()
        .load_safetensors(&fixtures().join("seed_small.safetensors"))
        .unwrap()
}

fn paper_unet<K: Backend>(device: &K::Device) -> DdpmUnet<K> {
    DdpmUnetConfig::new()
        .with_image_size(16)
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_num_res_blocks(1)
        .with_attention_resolutions(vec![8])
        .with_dropout(0.0)
        .with_norm_groups(4)
        .init(device)
        .unwrap()
        .load_pytorch_checkpoint(&fixtures().join("ddpm_small.pth"))
        .unwrap()
}

/// Every parameter's gradient, in visiting order.
struct CollectGrads<'a, K: AutodiffBackend> {
    grads: &'a K::Gradients,
    collected: Vec<Vec<f32>>,
}

impl<K: AutodiffBackend> ModuleVisitor<K> for CollectGrads<'_, K> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<K, D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.collected.push(to_vec(grad));
        }
    }
}

/// A training-mode pass on two fixed 3×16×16 images: output, input gradient, every
/// parameter's gradient.
fn training_pass<K, M>(model: M, ops: &Ops<K>, device: &K::Device) -> Vec<Vec<f32>>
where
    K: AutodiffBackend,
    M: Module<K> + NoisePredictor<K>,
{
    let x = tensor::<K, 4>([2, 3, 16, 16], 1.0, device).require_grad();
    let t = Tensor::from_data(TensorData::new(vec![5i64, 250], [2]), device);
    let output = model.predict_with(ops, x.clone(), t);
    let weights = tensor::<K, 4>(output.dims(), 0.5, device);
    let grads = (output.clone() * weights).sum().backward();
    let mut collect = CollectGrads::<K> {
        grads: &grads,
        collected: vec![to_vec(output), to_vec(x.grad(&grads).unwrap())],
    };
    model.visit(&mut collect);
    collect.collected
}

#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn training_passes_of_both_models_match_flex() {
    let (gpu, cpu) = (GpuDevice::default(), Default::default());
    let seed = training_pass(simple_unet::<Cpu>(&cpu), &Ops::burn(), &cpu);
    let paper = training_pass(paper_unet::<Cpu>(&cpu), &Ops::burn(), &cpu);
    for (kernels, precision, tolerance) in cases() {
        let ops = table(kernels, precision);
        // Whole models compound the products' rounding: twice a layer's tolerance.
        let ours = training_pass(simple_unet::<GpuAutodiff>(&gpu), &ops, &gpu);
        assert_close(
            &format!("{kernels} {precision} SimpleUnet"),
            &ours,
            &seed,
            2.0 * tolerance,
        );
        let ours = training_pass(paper_unet::<GpuAutodiff>(&gpu), &ops, &gpu);
        assert_close(
            &format!("{kernels} {precision} paper U-Net"),
            &ours,
            &paper,
            2.0 * tolerance,
        );
    }
}

/// One step of the trainer (loss, backward, Adam) on each preset's model, every kernel set: a
/// finite loss, and weights that moved.
#[test]
#[ignore = "needs a CUDA GPU with cuDNN and cuBLAS"]
fn a_training_step_of_each_model_runs_on_every_kernel_set() {
    use ddpm_trainer::{Preset, TrainConfig, Trainer};
    let gpu = GpuDevice::default();
    for preset in [Preset::CpuDemo, Preset::Seed, Preset::DdpmCifar10] {
        for kernels in [GpuKernels::Cudnn, GpuKernels::Fixed] {
            for precision in [Precision::F32, Precision::Bf16] {
                let config = TrainConfig {
                    precision,
                    ..TrainConfig::preset(preset)
                };
                let tables = CudaKernels {
                    kernels,
                    gathering: false,
                }
                .training(precision)
                .unwrap();
                let mut trainer = Trainer::<GpuAutodiff>::new(&config, tables, &gpu).unwrap();
                let size = config.image_size;
                let channels = trainer.model().image_channels();
                let x0 = tensor::<GpuAutodiff, 4>([4, channels, size, size], 1.0, &gpu);
                let before = weights(&trainer.model().valid());
                let loss: f32 = trainer.step(x0).into_scalar();
                assert!(
                    loss.is_finite(),
                    "{preset} {kernels} {precision}: loss {loss}"
                );
                assert_ne!(
                    before,
                    weights(&trainer.model().valid()),
                    "{preset} {kernels} {precision}: the step moved no weight"
                );
            }
        }
    }
}

/// Every parameter's values, in visiting order.
fn weights<K: Backend>(model: &impl Module<K>) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl<K: Backend> ModuleVisitor<K> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<K, D>>) {
            self.0.push(to_vec(param.val()));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}
