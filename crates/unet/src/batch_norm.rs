//! BatchNorm over `[N, C, H, W]` activations, laid out for fast CPU kernels.
//!
//! The parameters are burn's [`BatchNorm`]'s (so records, safetensors and the seed's checkpoints
//! are unchanged); the arithmetic is PyTorch's `BatchNorm2d`: batch statistics in training
//! (biased variance to normalise, unbiased variance into the running estimate), running
//! statistics otherwise.
//!
//! Why not `BatchNorm::forward`: it broadcasts `[1, C, 1, 1]` statistics against the activations
//! in four ops (sub, div, mul, add) and transposes the activations twice to reduce them. burn-flex
//! runs a `[1, C, 1, 1]` broadcast through a scalar strided iterator on one core; in a profile of
//! a flex training step that was a quarter of the time. Here the activations are viewed as
//! `[N, C, H·W]`, every per-channel tensor is materialised as a contiguous `[N, C, 1]` (one value
//! per row, which backends vectorise), the affine part is one multiply and one add, and the
//! statistics reduce along contiguous rows.
//!
//! SimpleUnet applies a ReLU right before each BatchNorm; a backend with
//! [norm kernels](crate::register_norm_kernels) computes the pair in one pass (each way).

use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor, backend::Backend};

use crate::kernels::{NormalizedBatch, norm_kernels};

/// `batch_norm_2d(norm, relu(x), shift)`, by the backend's registered norm kernel if it has one
/// for the mode (training whenever the backend tracks gradients).
pub(crate) fn relu_batch_norm_2d<B: Backend>(
    norm: &BatchNorm<B>,
    x: Tensor<B, 4>,
    shift: Option<Tensor<B, 2>>,
) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let device = x.device();
    // The kernels take f32 activations only.
    let kernels = norm_kernels::<B>().filter(|_| x.dtype() == DType::F32);
    let offset = |per_channel: Tensor<B, 1>| row_offset(per_channel, shift.clone(), n);
    let modes = kernels.map(|kernels| (kernels.training, kernels.inference));
    match (B::ad_enabled(&device), modes) {
        (true, Some((Some(kernel), _))) => {
            let gamma = norm.gamma.val().to_device(&device);
            let beta = norm.beta.val().to_device(&device);
            let NormalizedBatch {
                output,
                mean,
                variance,
            } = kernel(x, gamma, offset(beta), norm.epsilon);
            update_running_stats(norm, mean, variance, n * h * w);
            output
        }
        (false, Some((_, Some(kernel)))) => {
            let (scale, bias) = folded_affine(norm, &device);
            kernel(x, scale, offset(bias))
        }
        _ => batch_norm_2d(norm, relu(x), shift),
    }
}

/// β (or β − mean·scale) per channel `[C]` plus the caller's `shift` `[N, C]`: one `[N, C]` offset,
/// so that the affine step and the shift are one pass over the activations.
fn row_offset<B: Backend>(
    per_channel: Tensor<B, 1>,
    shift: Option<Tensor<B, 2>>,
    batch: usize,
) -> Tensor<B, 2> {
    let [channels] = per_channel.dims();
    let offset = per_channel.reshape([1, channels]).repeat_dim(0, batch);
    match shift {
        Some(shift) => offset + shift,
        None => offset,
    }
}

/// Inference's affine step per channel `[C]`, the running statistics folded in:
/// `scale = γ / sqrt(running_var + ε)`, `bias = β − running_mean · scale`.
fn folded_affine<B: Backend>(
    norm: &BatchNorm<B>,
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let on_device = |v: Tensor<B, 1>| v.to_device(device);
    let var = on_device(norm.running_var.value());
    let scale = on_device(norm.gamma.val()) / var.add_scalar(norm.epsilon).sqrt();
    let bias = on_device(norm.beta.val()) - on_device(norm.running_mean.value()) * scale.clone();
    (scale, bias)
}

/// `norm` applied to `x: [N, C, H, W]`, then `shift: [N, C]` (one value per sample and channel,
/// such as a block's time embedding) added in the same pass. Training mode whenever the backend
/// tracks gradients, as with burn's own `BatchNorm`.
fn batch_norm_2d<B: Backend>(
    norm: &BatchNorm<B>,
    x: Tensor<B, 4>,
    shift: Option<Tensor<B, 2>>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let x = x.reshape([n, c, h * w]);
    let per_channel = |v: Tensor<B, 1>| v.to_device(&device).reshape([1, c, 1]);
    // [1, C, 1] → [N, C, 1], contiguous: one scalar per row of x.
    let per_row = |v: Tensor<B, 3>| v.repeat_dim(0, n);
    let offset = |per_channel: Tensor<B, 1>| row_offset(per_channel, shift, n).reshape([n, c, 1]);

    let y = if B::ad_enabled(&device) {
        let count = n * h * w;
        let mean_over_rows = |v: Tensor<B, 3>| v.sum_dim(2).sum_dim(0).div_scalar(count as f64);
        let mean = mean_over_rows(x.clone());
        let centered = x - per_row(mean.clone());
        let var = mean_over_rows(centered.clone().square());
        update_running_stats(
            norm,
            mean.clone().reshape([c]),
            var.clone().reshape([c]),
            count,
        );
        let scale = per_channel(norm.gamma.val()) / var.add_scalar(norm.epsilon).sqrt();
        centered * per_row(scale) + offset(norm.beta.val().to_device(&device))
    } else {
        let (scale, bias) = folded_affine(norm, &device);
        x * per_row(per_channel(scale)) + offset(bias)
    };
    y.reshape([n, c, h, w])
}

/// PyTorch's update: `running ← (1 − momentum)·running + momentum·batch`, with the batch
/// variance made unbiased (`count / (count − 1)`).
fn update_running_stats<B: Backend>(
    norm: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    count: usize,
) {
    let momentum = norm.momentum;
    let bessel = if count > 1 {
        count as f64 / (count as f64 - 1.0)
    } else {
        1.0
    };
    let blend = |running: Tensor<B, 1>, batch: Tensor<B, 1>, factor: f64| {
        let device = running.device();
        let batch = batch.detach().to_device(&device);
        running
            .mul_scalar(1.0 - momentum)
            .add(batch.mul_scalar(momentum * factor))
            .detach()
    };
    norm.running_mean
        .update(blend(norm.running_mean.value_sync(), mean, 1.0));
    norm.running_var
        .update(blend(norm.running_var.value_sync(), var, bessel));
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::module::RunningState;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, ElementConversion};
    use burn_ndarray::NdArray;

    use super::*;
    use crate::kernels::{NormKernels, register_norm_kernels};

    // f32 (the kernels' element type) with i32 integers: backend types no other test uses, for
    // the registry is process-wide.
    type Inference = NdArray<f32, i32>;
    type Training = Autodiff<Inference>;

    fn largest_difference<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        (a - b).abs().max().into_scalar().elem()
    }

    /// A norm whose parameters and running statistics are not the defaults (the same each call).
    fn shifted_norm<B: Backend>() -> BatchNorm<B> {
        let device = Default::default();
        let values = |v: [f32; 3]| Tensor::<B, 1>::from_floats(v, &device);
        let mut norm = BatchNormConfig::new(3).init::<B>(&device);
        norm.gamma = norm.gamma.map(|_| values([0.5, 1.5, 2.0]));
        norm.beta = norm.beta.map(|_| values([-0.5, 0.25, 1.0]));
        norm.running_mean = RunningState::new(values([0.3, -0.2, 0.1]));
        norm.running_var = RunningState::new(values([0.7, 1.3, 2.1]));
        norm
    }

    /// What the kernels compute, by burn's operations, plus one (so that the output tells which
    /// ran).
    fn marked_training(
        x: Tensor<Training, 4>,
        gamma: Tensor<Training, 1>,
        offset: Tensor<Training, 2>,
        epsilon: f64,
    ) -> NormalizedBatch<Training> {
        let [n, c, _, _] = x.dims();
        let per_channel = |v: Tensor<Training, 1>| v.reshape([1, c, 1, 1]);
        let channel_mean = |v: Tensor<Training, 4>| v.mean_dim(0).mean_dim(2).mean_dim(3);
        let r = relu(x);
        let mean = channel_mean(r.clone()).reshape([c]);
        let centered = r - per_channel(mean.clone());
        let variance = channel_mean(centered.clone().square()).reshape([c]);
        let scale = gamma / variance.clone().add_scalar(epsilon).sqrt();
        let output = centered * per_channel(scale) + offset.reshape([n, c, 1, 1]) + 1.0;
        NormalizedBatch {
            output,
            mean,
            variance,
        }
    }

    fn marked_inference(
        x: Tensor<Inference, 4>,
        scale: Tensor<Inference, 1>,
        offset: Tensor<Inference, 2>,
    ) -> Tensor<Inference, 4> {
        let [n, c, _, _] = x.dims();
        relu(x) * scale.reshape([1, c, 1, 1]) + offset.reshape([n, c, 1, 1]) + 1.0
    }

    #[test]
    fn registered_kernels_get_the_folded_parameters_and_update_the_running_statistics() {
        let device = Default::default();
        register_norm_kernels::<Inference>(Some(NormKernels {
            training: None,
            inference: Some(marked_inference),
        }));
        register_norm_kernels::<Training>(Some(NormKernels {
            training: Some(marked_training),
            inference: None,
        }));

        let x = Tensor::<Inference, 4>::random([2, 3, 4, 5], Distribution::Default, &device) - 0.3;
        let shift = Tensor::<Inference, 2>::random([2, 3], Distribution::Default, &device);
        let norm = shifted_norm::<Inference>();
        let ours = relu_batch_norm_2d(&norm, x.clone(), Some(shift.clone()));
        let burns = batch_norm_2d(&norm, relu(x.clone()), Some(shift.clone()));
        assert!(largest_difference(ours, burns + 1.0) < 1e-5);

        let (ours, burns) = (shifted_norm::<Training>(), shifted_norm::<Training>());
        let (x, shift) = (Tensor::from_inner(x), Tensor::from_inner(shift));
        let output = relu_batch_norm_2d(&ours, x.clone(), Some(shift.clone()));
        let expected = batch_norm_2d(&burns, relu(x), Some(shift));
        assert!(largest_difference(output, expected + 1.0) < 1e-5);
        let running = |norm: &BatchNorm<Training>| {
            let stats = [
                norm.running_mean.value_sync(),
                norm.running_var.value_sync(),
            ];
            Tensor::cat(stats.to_vec(), 0)
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let (ours, burns) = (running(&ours), running(&burns));
        for (a, b) in ours.iter().zip(&burns) {
            assert!((a - b).abs() < 1e-6, "{ours:?} vs {burns:?}");
        }
    }
}
