//! Convolution entries: burn's signatures, so that `burn::tensor::module::conv2d` and
//! `conv_transpose2d` are the defaults as they are.

use burn::tensor::Tensor;
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};

/// A 2-D convolution of `x` `[N, Cin, H, W]` with `weight` `[Cout, Cin / groups, kh, kw]` and an
/// optional `bias` `[Cout]`, with burn's (possibly asymmetric) padding options.
pub type Conv2dFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>, PaddedConvOptions<2>) -> Tensor<B, 4>;

/// A 2-D transposed convolution of `x` `[N, Cin, H, W]` with `weight`
/// `[Cin, Cout / groups, kh, kw]` and an optional `bias` `[Cout]`.
pub type ConvTranspose2dFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>, ConvTransposeOptions<2>) -> Tensor<B, 4>;
