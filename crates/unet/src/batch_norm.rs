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

use burn::nn::BatchNorm;
use burn::tensor::{Tensor, backend::Backend};

/// `norm` applied to `x: [N, C, H, W]`, then `shift: [N, C]` (one value per sample and channel,
/// such as a block's time embedding) added in the same pass. Training mode whenever the backend
/// tracks gradients, as with burn's own `BatchNorm`.
pub(crate) fn batch_norm_2d<B: Backend>(
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
    let gamma = per_channel(norm.gamma.val());
    let beta = per_channel(norm.beta.val());
    // β (or β − mean·scale) plus the caller's shift: one [N, C, 1] offset, one pass over x.
    let offset = |per_channel_offset: Tensor<B, 3>| match shift {
        Some(shift) => per_row(per_channel_offset) + shift.reshape([n, c, 1]),
        None => per_row(per_channel_offset),
    };

    let y = if B::ad_enabled(&device) {
        let count = n * h * w;
        let mean_over_rows = |v: Tensor<B, 3>| v.sum_dim(2).sum_dim(0).div_scalar(count as f64);
        let mean = mean_over_rows(x.clone());
        let centered = x - per_row(mean.clone());
        let var = mean_over_rows(centered.clone().square());
        update_running_stats(norm, mean, var.clone(), count);
        let scale = gamma / var.add_scalar(norm.epsilon).sqrt();
        centered * per_row(scale) + offset(beta)
    } else {
        let mean = per_channel(norm.running_mean.value());
        let var = per_channel(norm.running_var.value());
        let scale = gamma / var.add_scalar(norm.epsilon).sqrt();
        let bias = beta - mean * scale.clone();
        x * per_row(scale) + offset(bias)
    };
    y.reshape([n, c, h, w])
}

/// PyTorch's update: `running ← (1 − momentum)·running + momentum·batch`, with the batch
/// variance made unbiased (`count / (count − 1)`).
fn update_running_stats<B: Backend>(
    norm: &BatchNorm<B>,
    mean: Tensor<B, 3>,
    var: Tensor<B, 3>,
    count: usize,
) {
    let momentum = norm.momentum;
    let bessel = if count > 1 {
        count as f64 / (count as f64 - 1.0)
    } else {
        1.0
    };
    let blend = |running: Tensor<B, 1>, batch: Tensor<B, 3>, factor: f64| {
        let device = running.device();
        let [channels] = running.dims();
        let batch = batch.detach().reshape([channels]).to_device(&device);
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
