//! SimpleUnet's ReLU followed by BatchNorm over `[N, C, H, W]` activations, through the table's
//! norm entries.
//!
//! The parameters are burn's [`BatchNorm`]'s (so records, safetensors and the seed's checkpoints
//! are unchanged); the arithmetic is PyTorch's `BatchNorm2d`: batch statistics in training
//! (biased variance to normalise, unbiased variance into the running estimate), running
//! statistics otherwise. This module owns what is the model's: the affine offset with the block's
//! time embedding folded in, the running statistics, and folding them for inference; the table
//! computes the pass over the activations.

use burn::nn::BatchNorm;
use burn::tensor::{Tensor, backend::Backend};
use ddpm_ops::{NormalizedBatch, Ops};

/// `batch_norm(relu(x)) + shift` with `shift: [N, C]` (one value per sample and channel, such as a
/// block's time embedding) added in the same pass. Training mode whenever the backend tracks
/// gradients, as with burn's own `BatchNorm`.
pub(crate) fn relu_batch_norm_2d<B: Backend>(
    ops: &Ops<B>,
    norm: &BatchNorm<B>,
    x: Tensor<B, 4>,
    shift: Option<Tensor<B, 2>>,
) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let device = x.device();
    let offset = |per_channel: Tensor<B, 1>| row_offset(per_channel, shift, n);
    if B::ad_enabled(&device) {
        let gamma = norm.gamma.val().to_device(&device);
        let beta = norm.beta.val().to_device(&device);
        let NormalizedBatch {
            output,
            mean,
            variance,
        } = (ops.relu_batch_norm)(x, gamma, offset(beta), norm.epsilon);
        update_running_stats(norm, mean, variance, n * h * w);
        output
    } else {
        let (scale, bias) = folded_affine(norm, &device);
        (ops.relu_scale_shift)(x, scale, offset(bias))
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
    use burn::tensor::activation::relu;
    use burn::tensor::{Distribution, ElementConversion};
    use burn_ndarray::NdArray;

    use super::*;

    type Inference = NdArray<f32>;
    type Training = Autodiff<Inference>;

    fn largest_difference<K: Backend>(a: Tensor<K, 4>, b: Tensor<K, 4>) -> f32 {
        (a - b).abs().max().into_scalar().elem()
    }

    /// A norm whose parameters and running statistics are not the defaults (the same each call).
    fn shifted_norm<K: Backend>() -> BatchNorm<K> {
        let device = Default::default();
        let values = |v: [f32; 3]| Tensor::<K, 1>::from_floats(v, &device);
        let mut norm = BatchNormConfig::new(3).init::<K>(&device);
        norm.gamma = norm.gamma.map(|_| values([0.5, 1.5, 2.0]));
        norm.beta = norm.beta.map(|_| values([-0.5, 0.25, 1.0]));
        norm.running_mean = RunningState::new(values([0.3, -0.2, 0.1]));
        norm.running_var = RunningState::new(values([0.7, 1.3, 2.1]));
        norm
    }

    /// The running statistics, mean then variance.
    fn running<K: Backend>(norm: &BatchNorm<K>) -> Vec<f32> {
        let stats = [
            norm.running_mean.value_sync(),
            norm.running_var.value_sync(),
        ];
        Tensor::cat(stats.to_vec(), 0)
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    }

    /// Both modes against PyTorch's `BatchNorm2d` after a ReLU, written out with burn's own
    /// `BatchNorm` (which is PyTorch's, but for the running variance's Bessel factor), the shift
    /// added after it.
    #[test]
    fn matches_burns_batch_norm_and_pytorchs_running_statistics() {
        let device = Default::default();
        let x = Tensor::<Inference, 4>::random([2, 3, 4, 5], Distribution::Default, &device) - 0.3;
        let shift = Tensor::<Inference, 2>::random([2, 3], Distribution::Default, &device);
        let shifted = |y: Tensor<Inference, 4>| y + shift.clone().reshape([2, 3, 1, 1]);

        let norm = shifted_norm::<Inference>();
        let ours = relu_batch_norm_2d(&Ops::burn(), &norm, x.clone(), Some(shift.clone()));
        let burns = shifted(norm.forward(relu(x.clone())));
        assert!(largest_difference(ours, burns) < 1e-5);

        let ours = shifted_norm::<Training>();
        let output = relu_batch_norm_2d(
            &Ops::burn(),
            &ours,
            Tensor::from_inner(x.clone()),
            Some(Tensor::from_inner(shift.clone())),
        );
        let burns = shifted_norm::<Training>();
        let expected = burns.forward(relu(Tensor::from_inner(x.clone())));
        let expected = expected + Tensor::from_inner(shift.clone()).reshape([2, 3, 1, 1]);
        assert!(largest_difference(output, expected) < 1e-5);

        // PyTorch blends in the unbiased variance of the 2·4·5 = 40 values per channel.
        let r = relu(x);
        let mean = r.clone().mean_dim(0).mean_dim(2).mean_dim(3).reshape([3]);
        let variance = (r - mean.clone().reshape([1, 3, 1, 1]))
            .square()
            .sum_dim(0)
            .sum_dim(2)
            .sum_dim(3)
            .reshape([3])
            / 39.0;
        let start = shifted_norm::<Inference>();
        let expected_mean = start.running_mean.value() * 0.9 + mean * 0.1;
        let expected_var = start.running_var.value() * 0.9 + variance * 0.1;
        let expected: Vec<f32> = Tensor::cat(vec![expected_mean, expected_var], 0)
            .into_data()
            .to_vec()
            .unwrap();
        for (a, b) in running(&ours).iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
