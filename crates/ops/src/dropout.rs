//! Dropout: the paper U-Net's residual blocks zero activations at random while training.

use burn::nn::DropoutConfig;
use burn::tensor::{Tensor, backend::Backend};

/// Dropout with probability `p` (in `[0, 1)`): on an autodiff backend each value is zeroed with
/// probability `p` and the rest scaled by `1/(1 − p)`, the draws from the backend's random
/// state; elsewhere (inference) the input unchanged.
pub type DropoutFn<B> = fn(Tensor<B, 4>, f64) -> Tensor<B, 4>;

/// [`DropoutFn`] as burn's `Dropout` module computes it: a Bernoulli tensor, and two products.
pub fn dropout<B: Backend>(x: Tensor<B, 4>, probability: f64) -> Tensor<B, 4> {
    DropoutConfig::new(probability).init().forward(x)
}
