//! Transposed convolutions from a few input pixels as one matrix product over the whole batch,
//! the scatter written as whole-tensor pads and sums, one per kernel tap, grouped by the output
//! phase (row and column modulo the stride) the tap lands on. The pads and sums grow with the
//! output while the product gains less, so it pays only from many input channels per input pixel
//! (the convolutions' inference threshold, training or not).

use burn::tensor::ops::{ConvTransposeOptions, PadMode};
use burn::tensor::{Tensor, backend::Backend, module};

use super::conv::INFERENCE_FROM;

/// burn's `module::conv_transpose2d`, gathered where that pays.
pub fn conv_transpose2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    match Geometry::gathering(&x, &weight, &options) {
        Some(geometry) => gathered(x, weight, bias, &geometry),
        None => module::conv_transpose2d(x, weight, bias, options),
    }
}

/// A plain transposed convolution: kernel, stride, padding and output size.
#[derive(Debug)]
pub struct Geometry {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    out: [usize; 2],
}

impl Geometry {
    /// The geometry of the transposed convolution of `x` with `weight` if it is plain and has at
    /// least [`INFERENCE_FROM`] input channels per input pixel.
    pub fn gathering<B: Backend>(
        x: &Tensor<B, 4>,
        weight: &Tensor<B, 4>,
        options: &ConvTransposeOptions<2>,
    ) -> Option<Self> {
        let [_, channels_in, height, width] = x.dims();
        let geometry = Self::of([height, width], weight.dims(), options)?;
        (weight.dims()[0] == channels_in && channels_in >= INFERENCE_FROM * height * width)
            .then_some(geometry)
    }

    /// `None` for what [`gathered`] leaves to burn: groups, dilation, output padding, a stride
    /// over the kernel, or padding that leaves no output (which burn reports).
    fn of(
        input: [usize; 2],
        [_, _, kernel_h, kernel_w]: [usize; 4],
        options: &ConvTransposeOptions<2>,
    ) -> Option<Self> {
        let kernel = [kernel_h, kernel_w];
        let plain =
            options.groups == 1 && options.dilation == [1, 1] && options.padding_out == [0, 0];
        let fits = (0..2).all(|d| options.stride[d] > 0 && options.stride[d] <= kernel[d]);
        if !plain || !fits || input.contains(&0) {
            return None;
        }
        let side = |d: usize| {
            let full = (input[d] - 1) * options.stride[d] + kernel[d];
            full.checked_sub(2 * options.padding[d])
                .filter(|&side| side > 0)
        };
        Some(Self {
            kernel,
            stride: options.stride,
            padding: options.padding,
            out: [side(0)?, side(1)?],
        })
    }
}

/// `taps = Wᵀ [Cout·kh·kw, Cin] × x [Cin, N·H·W]`, then each tap added at its place.
///
/// Tap `(i, j)` moves input pixel `(h, w)` to output `(h·s + i, w·s + j)`. Split the output by
/// phase `(a, b) = (row mod s, column mod s)`: phase `a` gets the taps `i = a + s·m`, shifted down
/// `m` rows of that phase. So each phase is a sum of padded taps, and the phases interleave into
/// the output by one stack and reshape.
pub fn gathered<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    geometry: &Geometry,
) -> Tensor<B, 4> {
    let [batch, channels_in, height, width] = x.dims();
    let [kernel_h, kernel_w] = geometry.kernel;
    let [stride_h, stride_w] = geometry.stride;
    let [out_h, out_w] = geometry.out;
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
    let [top, left] = geometry.padding;
    let mut out = full.slice([
        0..channels_out,
        0..batch,
        top..top + out_h,
        left..left + out_w,
    ]);
    if let Some(bias) = bias {
        out = out + bias.reshape([channels_out, 1, 1, 1]);
    }
    out.swap_dims(0, 1)
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
    use burn_ndarray::NdArray;

    use super::*;
    use crate::gather::testing::assert_same_as_burn;

    type B = Autodiff<NdArray<f32>>;

    fn options(conv: &ConvTranspose2d<B>) -> ConvTransposeOptions<2> {
        ConvTransposeOptions::new(
            conv.stride,
            conv.padding,
            conv.padding_out,
            conv.dilation,
            conv.groups,
        )
    }

    /// Output and all gradients of the gathered transposed convolution against burn's.
    fn check(config: ConvTranspose2dConfig, input: [usize; 4]) {
        let conv: ConvTranspose2d<B> = config.init(&Default::default());
        let weight = conv.weight.val();
        let geometry = Geometry::of([input[2], input[3]], weight.dims(), &options(&conv));
        let geometry = geometry.expect("a plain layer");
        let bias = conv.bias.as_ref().map(|bias| bias.val());
        let ours = |x| gathered(x, weight.clone(), bias.clone(), &geometry);
        assert_same_as_burn(input, ours, |x| conv.forward(x), &weight, bias.clone());
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
        let size = |config: ConvTranspose2dConfig| {
            let conv = config.init::<B>(&device);
            Geometry::of([1, 1], conv.weight.dims(), &options(&conv)).map(|g| g.out)
        };
        assert_eq!(size(plain), Some([4, 4]));
        for config in [out_padded, grouped, stride_over_kernel, padded_away] {
            assert_eq!(size(config), None);
        }
    }
}
