//! burn's layers computed through a backend's [`Ops`] table: the models keep burn's modules (so
//! records, safetensors and checkpoints are burn's), and call these instead of their `forward`.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{Tensor, backend::Backend};
use ddpm_ops::{GroupNormOptions, Ops};

/// `conv.forward(x)` by the table's convolution. (`Same` padding, which neither model uses, is
/// left to burn's layer.)
pub(crate) fn conv2d<B: Backend>(ops: &Ops<B>, conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [top, left, bottom, right] = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = PaddedConvOptions::asymmetric(
        conv.stride,
        [top, left],
        [bottom, right],
        conv.dilation,
        conv.groups,
    );
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    (ops.conv2d)(x, conv.weight.val(), bias, options)
}

/// `conv.forward(x)` by the table's transposed convolution.
pub(crate) fn conv_transpose2d<B: Backend>(
    ops: &Ops<B>,
    conv: &ConvTranspose2d<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let options = ConvTransposeOptions::new(
        conv.stride,
        conv.padding,
        conv.padding_out,
        conv.dilation,
        conv.groups,
    );
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    (ops.conv_transpose2d)(x, conv.weight.val(), bias, options)
}

/// `norm.forward(x)` (then SiLU if `silu`) by the table's GroupNorm, for the affine norms both
/// models build.
pub(crate) fn group_norm<B: Backend>(
    ops: &Ops<B>,
    norm: &GroupNorm<B>,
    x: Tensor<B, 4>,
    silu: bool,
) -> Tensor<B, 4> {
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        let y = norm.forward(x);
        return if silu {
            burn::tensor::activation::silu(y)
        } else {
            y
        };
    };
    let options = GroupNormOptions {
        groups: norm.num_groups,
        epsilon: norm.epsilon,
        silu,
    };
    (ops.group_norm)(x, gamma.val(), beta.val(), options)
}
