//! Self-attention over the pixels of a feature map, as the DDPM paper's U-Net computes it.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, backend::Backend};

/// Single-head attention with channels first: `q`, `k`, `v` `[N, C, L]` (`L` positions) →
/// `out[n, :, i] = Σ_j softmax_j(q[n, :, i] · k[n, :, j] / √C) · v[n, :, j]`, `[N, C, L]`.
pub type AttentionFn<B> = fn(Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>) -> Tensor<B, 3>;

/// The attention of [`AttentionFn`] in burn's operations: the scores `[N, L, L]`, a softmax over
/// the keys, and the values weighted by them.
pub fn attention<B: Backend>(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
    let channels = q.dims()[1];
    let scores = q.swap_dims(1, 2).matmul(k);
    let weights = softmax(scores.mul_scalar((channels as f64).powf(-0.5)), 2);
    v.matmul(weights.swap_dims(1, 2))
}
