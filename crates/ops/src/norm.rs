//! Normalisation entries: SimpleUnet's ReLU + BatchNorm (training and inference) and the paper
//! U-Net's GroupNorm (+ SiLU).
//!
//! The defaults view activations as `[N, C, H·W]` and materialise every per-channel value as a
//! contiguous `[N, C, 1]` (one value per row, which CPU backends vectorise) instead of
//! broadcasting `[1, C, 1, 1]`, and reduce along contiguous rows.

use burn::tensor::activation::{relu, silu};
use burn::tensor::{Tensor, backend::Backend};

/// A batch normalised with its own statistics, and those statistics.
#[derive(Debug)]
pub struct NormalizedBatch<B: Backend> {
    /// `[N, C, H, W]`, as the input.
    pub output: Tensor<B, 4>,
    /// Per channel `[C]`: the mean over the batch and the pixels.
    pub mean: Tensor<B, 1>,
    /// Per channel `[C]`: the biased variance (divided by N·H·W), the one that normalised.
    pub variance: Tensor<B, 1>,
}

/// Training-mode ReLU + BatchNorm: `(x, gamma [C], offset [N, C], epsilon)` →
/// `gamma[c]·(r − mean[c]) / sqrt(variance[c] + epsilon) + offset[n, c]` with `r = relu(x)` and
/// the statistics of `r` over the batch and the pixels; differentiable in `x`, `gamma` and
/// `offset` on an autodiff backend.
pub type ReluBatchNormFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 2>, f64) -> NormalizedBatch<B>;

/// Inference-mode ReLU + BatchNorm, its statistics folded into the affine step:
/// `(x, scale [C], offset [N, C])` → `relu(x)·scale[c] + offset[n, c]`.
pub type ReluScaleShiftFn<B> = fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 2>) -> Tensor<B, 4>;

/// [`ReluBatchNormFn`] in burn's operations.
pub fn relu_batch_norm<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    offset: Tensor<B, 2>,
    epsilon: f64,
) -> NormalizedBatch<B> {
    let [n, c, h, w] = x.dims();
    let x = relu(x).reshape([n, c, h * w]);
    let count = n * h * w;
    let mean_over_rows = |v: Tensor<B, 3>| v.sum_dim(2).sum_dim(0).div_scalar(count as f64);
    let mean = mean_over_rows(x.clone());
    let centered = x - per_row(mean.clone(), n);
    let variance = mean_over_rows(centered.clone().square());
    let scale = gamma.reshape([1, c, 1]) / variance.clone().add_scalar(epsilon).sqrt();
    let output = centered * per_row(scale, n) + offset.reshape([n, c, 1]);
    NormalizedBatch {
        output: output.reshape([n, c, h, w]),
        mean: mean.reshape([c]),
        variance: variance.reshape([c]),
    }
}

/// [`ReluScaleShiftFn`] in burn's operations.
pub fn relu_scale_shift<B: Backend>(
    x: Tensor<B, 4>,
    scale: Tensor<B, 1>,
    offset: Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let y = relu(x).reshape([n, c, h * w]) * per_row(scale.reshape([1, c, 1]), n)
        + offset.reshape([n, c, 1]);
    y.reshape([n, c, h, w])
}

/// `[1, C, 1]` → `[N, C, 1]`, contiguous: one scalar per row of an `[N, C, P]` batch.
fn per_row<B: Backend>(v: Tensor<B, 3>, batch: usize) -> Tensor<B, 3> {
    v.repeat_dim(0, batch)
}

/// What a GroupNorm entry is asked to compute besides its tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNormOptions {
    /// Groups of channels normalised together; they divide the channels.
    pub groups: usize,
    /// Added to the variance.
    pub epsilon: f64,
    /// Whether SiLU follows the norm.
    pub silu: bool,
}

/// GroupNorm with an affine step, optionally followed by SiLU: `(x [N, C, H, W], gamma [C],
/// beta [C], options)` → `[N, C, H, W]`, differentiable on an autodiff backend.
pub type GroupNormFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>, GroupNormOptions) -> Tensor<B, 4>;

/// [`GroupNormFn`] in burn's operations, in the order of burn's `GroupNorm::forward`.
pub fn group_norm<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    options: GroupNormOptions,
) -> Tensor<B, 4> {
    let shape = x.shape();
    let [n, c, h, w] = x.dims();
    let hidden = c / options.groups * h * w;
    let x = x.reshape([n, options.groups, hidden]);
    let mean = x.clone().sum_dim(2) / hidden as f64;
    let centered = x.sub(mean);
    let variance = centered.clone().square().sum_dim(2) / hidden as f64;
    let normalized = centered.div(variance.add_scalar(options.epsilon).sqrt());
    let y = normalized
        .reshape(shape)
        .mul(gamma.reshape([1, c, 1, 1]))
        .add(beta.reshape([1, c, 1, 1]));
    match options.silu {
        true => silu(y),
        false => y,
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Distribution, Tolerance};
    use burn_ndarray::NdArray;

    use super::*;

    type B = NdArray<f32>;

    #[test]
    fn group_norm_is_burns() {
        let device = Default::default();
        let norm = GroupNormConfig::new(3, 6)
            .with_epsilon(1e-6)
            .init::<B>(&device);
        let x = Tensor::<B, 4>::random([2, 6, 3, 4], Distribution::Normal(0.5, 2.0), &device);
        let gamma = Tensor::random([6], Distribution::Default, &device);
        let beta = Tensor::random([6], Distribution::Default, &device);
        let mut norm = norm;
        norm.gamma = norm.gamma.map(|p| p.map(|_| gamma.clone()));
        norm.beta = norm.beta.map(|p| p.map(|_| beta.clone()));
        let options = GroupNormOptions {
            groups: 3,
            epsilon: 1e-6,
            silu: true,
        };
        let ours = group_norm(x.clone(), gamma, beta, options);
        let burns = silu(norm.forward(x));
        ours.into_data()
            .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::absolute(1e-6));
    }

    /// Training mode against the textbook formula; inference against the folded one.
    #[test]
    fn relu_batch_norm_normalises_with_the_batch_statistics() {
        let device = Default::default();
        let x = Tensor::<B, 4>::random([3, 2, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let gamma = Tensor::<B, 1>::from_floats([0.5, 2.0], &device);
        let offset = Tensor::<B, 2>::random([3, 2], Distribution::Default, &device);
        let batch = relu_batch_norm(x.clone(), gamma.clone(), offset.clone(), 1e-5);

        let r = relu(x.clone());
        let mean = r.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let variance = (r.clone() - mean.clone())
            .square()
            .mean_dim(0)
            .mean_dim(2)
            .mean_dim(3);
        let expected = (r - mean.clone()) / variance.clone().add_scalar(1e-5).sqrt()
            * gamma.clone().reshape([1, 2, 1, 1])
            + offset.clone().reshape([3, 2, 1, 1]);
        let tolerance = Tolerance::<f32>::absolute(1e-5);
        batch
            .output
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
        batch
            .mean
            .into_data()
            .assert_approx_eq::<f32>(&mean.reshape([2]).into_data(), tolerance);
        batch
            .variance
            .into_data()
            .assert_approx_eq::<f32>(&variance.reshape([2]).into_data(), tolerance);

        let scale = Tensor::<B, 1>::from_floats([1.5, -0.5], &device);
        let folded = relu_scale_shift(x.clone(), scale.clone(), offset.clone());
        let expected = relu(x) * scale.reshape([1, 2, 1, 1]) + offset.reshape([3, 2, 1, 1]);
        folded
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
    }
}
