//! Transposed convolutions from a few input pixels, as one matrix product over the whole batch.
//!
//! burn-flex runs a transposed convolution one image at a time: a product of the weights
//! `[Cin, Cout·kh·kw]` with the image's `HW` pixels, then a scatter. From 2×2 inputs (the seed's
//! first up block, 512→512) those products have 4 columns and the weights are packed once per
//! image. Here one product covers the batch, and the scatter is written as whole-tensor pads and
//! sums, one per kernel tap, grouped by the output phase (row and column modulo the stride) the
//! tap lands on. Measured on burn-flex, 2 threads, batch 8, 512→512 4×4 stride 2 at 2×2: forward
//! 14.7 → 8.1 ms, forward + backward 68 → 43 ms; at 4×4 (256→256) it is already slower (21 → 28),
//! the pads and sums growing with the output while the product gains less. Hence one threshold
//! on input channels per input pixel, the convolutions' inference one, training or not.

use burn::nn::conv::ConvTranspose2d;
use burn::tensor::ops::{ConvTransposeOptions, PadMode};
use burn::tensor::{Tensor, backend::Backend};

use crate::conv::{GATHER_INFERENCE_FROM, batch_gathering};
use crate::kernels::conv_kernels;

/// `conv.forward(x)`, as one batch-wide matrix product when batch gathering is on, the layer is
/// plain (no groups, dilation or output padding, stride at most the kernel) and has at least
/// [`GATHER_INFERENCE_FROM`] input channels per input pixel; other plain layers go to the
/// [registered kernel](crate::register_conv_kernels) for `B` if there is one, the rest to burn.
pub(crate) fn conv_transpose2d<B: Backend>(
    conv: &ConvTranspose2d<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, channels_in, height, width] = x.dims();
    if out_size(conv, [height, width]).is_none() {
        return conv.forward(x);
    }
    if batch_gathering() && channels_in >= GATHER_INFERENCE_FROM * height * width {
        return gathered(conv, x);
    }
    match conv_kernels::<B>() {
        Some(kernels) => {
            let options = ConvTransposeOptions::new(
                conv.stride,
                conv.padding,
                conv.padding_out,
                conv.dilation,
                conv.groups,
            );
            let bias = conv.bias.as_ref().map(|bias| bias.val());
            (kernels.conv_transpose2d)(x, conv.weight.val(), bias, options)
        }
        None => conv.forward(x),
    }
}

/// The output's height and width, or `None` for what [`gathered`] leaves to burn (including
/// padding that leaves no output, which burn reports).
fn out_size<B: Backend>(conv: &ConvTranspose2d<B>, input: [usize; 2]) -> Option<[usize; 2]> {
    let plain = conv.groups == 1 && conv.dilation == [1, 1] && conv.padding_out == [0, 0];
    let fits = (0..2).all(|d| conv.stride[d] <= conv.kernel_size[d]);
    if !plain || !fits {
        return None;
    }
    let side = |d: usize| {
        let full = (input[d] - 1) * conv.stride[d] + conv.kernel_size[d];
        full.checked_sub(2 * conv.padding[d])
            .filter(|&side| side > 0)
    };
    Some([side(0)?, side(1)?])
}

/// `taps = Wᵀ [Cout·kh·kw, Cin] × x [Cin, N·H·W]`, then each tap added at its place.
///
/// Tap `(i, j)` moves input pixel `(h, w)` to output `(h·s + i, w·s + j)`. Split the output by
/// phase `(a, b) = (row mod s, column mod s)`: phase `a` gets the taps `i = a + s·m`, shifted down
/// `m` rows of that phase. So each phase is a sum of padded taps, and the phases interleave into
/// the output by one stack and reshape.
fn gathered<B: Backend>(conv: &ConvTranspose2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, channels_in, height, width] = x.dims();
    let [kernel_h, kernel_w] = conv.kernel_size;
    let [stride_h, stride_w] = conv.stride;
    let [out_h, out_w] = out_size(conv, [height, width]).expect("checked by the caller");
    let weight = conv.weight.val();
    let channels_out = weight.dims()[1];

    let x = x
        .swap_dims(0, 1)
        .reshape([channels_in, batch * height * width]);
    let taps = weight
        .reshape([channels_in, channels_out * kernel_h * kernel_w])
        .transpose()
        .matmul(x)
        .reshape([channels_out, kernel_h, kernel_w, batch, height, width]);
    let tap = |i: usize, j: usize| {
        taps.clone()
            .slice([
                0..channels_out,
                i..i + 1,
                j..j + 1,
                0..batch,
                0..height,
                0..width,
            ])
            .reshape([channels_out, batch, height, width])
    };

    // Every phase spans the same rows and columns; those past the last tap stay zero.
    let phase_h = height + (kernel_h - 1) / stride_h;
    let phase_w = width + (kernel_w - 1) / stride_w;
    let mut phase_rows = Vec::with_capacity(stride_h);
    for a in 0..stride_h {
        let mut phases = Vec::with_capacity(stride_w);
        for b in 0..stride_w {
            let mut phase: Option<Tensor<B, 4>> = None;
            for (m, i) in (a..kernel_h).step_by(stride_h).enumerate() {
                for (n, j) in (b..kernel_w).step_by(stride_w).enumerate() {
                    let padding = (n, phase_w - width - n, m, phase_h - height - m);
                    let placed = tap(i, j).pad(padding, PadMode::Constant(0.0));
                    phase = Some(match phase {
                        Some(sum) => sum + placed,
                        None => placed,
                    });
                }
            }
            phases.push(phase.expect("stride at most the kernel: every phase has a tap"));
        }
        phase_rows.push(Tensor::stack::<5>(phases, 4));
    }
    let full = Tensor::stack::<6>(phase_rows, 3).reshape([
        channels_out,
        batch,
        phase_h * stride_h,
        phase_w * stride_w,
    ]);
    let [top, left] = conv.padding;
    let mut out = full.slice([
        0..channels_out,
        0..batch,
        top..top + out_h,
        left..left + out_w,
    ]);
    if let Some(bias) = &conv.bias {
        out = out + bias.val().reshape([channels_out, 1, 1, 1]);
    }
    out.swap_dims(0, 1)
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn_ndarray::NdArray;

    use super::*;
    use crate::conv::testing::assert_same_as_burn;

    type B = Autodiff<NdArray<f32>>;

    /// Output and all gradients of the gathered transposed convolution against burn's.
    fn check(config: ConvTranspose2dConfig, input: [usize; 4]) {
        let conv: ConvTranspose2d<B> = config.init(&Default::default());
        assert!(out_size(&conv, [input[2], input[3]]).is_some());
        let bias = conv.bias.as_ref().map(|bias| bias.val());
        let ours = |x| gathered(&conv, x);
        assert_same_as_burn(input, ours, |x| conv.forward(x), &conv.weight.val(), bias);
    }

    #[test]
    fn the_seeds_4x4_stride_2_upsampling_matches_burns() {
        let config = ConvTranspose2dConfig::new([6, 5], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1]);
        check(config, [3, 6, 2, 2]);
    }

    #[test]
    fn odd_kernels_strides_and_paddings_match_burns() {
        check(ConvTranspose2dConfig::new([4, 3], [3, 3]), [2, 4, 2, 3]);
        let mixed = ConvTranspose2dConfig::new([3, 4], [3, 2])
            .with_stride([2, 1])
            .with_padding([1, 0]);
        check(mixed, [2, 3, 3, 2]);
        let wide_stride = ConvTranspose2dConfig::new([2, 3], [3, 3])
            .with_stride([3, 3])
            .with_padding([1, 1]);
        check(wide_stride, [1, 2, 2, 2]);
    }

    #[test]
    fn only_plain_layers_with_room_for_an_output_gather() {
        let device = Default::default();
        let plain = ConvTranspose2dConfig::new([2, 2], [4, 4]).with_stride([2, 2]);
        let out_padded = plain.clone().with_padding_out([1, 1]);
        let grouped = plain.clone().with_groups(2);
        let stride_over_kernel = ConvTranspose2dConfig::new([2, 2], [2, 2]).with_stride([3, 3]);
        let padded_away = ConvTranspose2dConfig::new([2, 2], [1, 1]).with_padding([1, 1]);
        let size = |config: ConvTranspose2dConfig| out_size(&config.init::<B>(&device), [1, 1]);
        assert_eq!(size(plain), Some([4, 4]));
        for config in [out_padded, grouped, stride_over_kernel, padded_away] {
            assert_eq!(size(config), None);
        }
    }
}
