//! Convolutions on small feature maps as `W [Cout, Cin·kh·kw] × patches [Cin·kh·kw, N·P]`.

use burn::tensor::ops::{PadMode, PaddedConvOptions};
use burn::tensor::{Slice, Tensor, backend::Backend, module};

use super::Rival;

/// Output channels per output pixel from which a training step gathers the batch's patches,
/// against burn's convolution.
const TRAINING_FROM: usize = 8;
/// The same for inference, where burn's forward convolution is the stronger rival.
pub(crate) const INFERENCE_FROM: usize = 64;
/// Both thresholds against this crate's kernels, which are faster than burn's, so fewer layers
/// gain from gathering.
const TRAINING_FROM_KERNEL: usize = 64;
const INFERENCE_FROM_KERNEL: usize = 128;

/// Whether gathering the batch's patches beats the `rival` for a layer with `channels_out`
/// output channels and `out_pixels` output pixels per image.
pub fn gathers(channels_out: usize, out_pixels: usize, training: bool, rival: Rival) -> bool {
    let from = match (rival, training) {
        (Rival::Burn, true) => TRAINING_FROM,
        (Rival::Burn, false) => INFERENCE_FROM,
        (Rival::Kernel, true) => TRAINING_FROM_KERNEL,
        (Rival::Kernel, false) => INFERENCE_FROM_KERNEL,
    };
    channels_out >= from * out_pixels
}

/// burn's `module::conv2d`, gathered where that beats burn (the table entry for CPU backends
/// without kernels of their own).
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    match Geometry::gathering(&x, &weight, &options, Rival::Burn) {
        Some(geometry) => gathered(x, weight, bias, &geometry),
        None => module::conv2d(x, weight, bias, options),
    }
}

/// Padding, kernel, stride and output size of a plain convolution.
#[derive(Debug)]
pub struct Geometry {
    /// Top, left, bottom, right.
    padding: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    /// The geometry of the convolution of `x` with `weight`, if it is plain (one group, no
    /// dilation, a kernel no larger than the padded input) and gathering beats the `rival` for it
    /// (in training when the backend tracks gradients).
    pub fn gathering<B: Backend>(
        x: &Tensor<B, 4>,
        weight: &Tensor<B, 4>,
        options: &PaddedConvOptions<2>,
        rival: Rival,
    ) -> Option<Self> {
        let geometry = Self::of(x.dims(), weight.dims(), options)?;
        let training = B::ad_enabled(&x.device());
        let channels_out = weight.dims()[0];
        gathers(
            channels_out,
            geometry.out_h * geometry.out_w,
            training,
            rival,
        )
        .then_some(geometry)
    }

    /// `None` for what [`gathered`] does not handle: groups, dilation, or a kernel larger than
    /// the padded input (burn's convolution reports that).
    fn of(
        [_, channels_in, height, width]: [usize; 4],
        [_, weight_in, kernel_h, kernel_w]: [usize; 4],
        options: &PaddedConvOptions<2>,
    ) -> Option<Self> {
        let plain = &options.options;
        let [top, left] = plain.padding;
        let [bottom, right] = options.padding_end.unwrap_or(plain.padding);
        let padded_h = height + top + bottom;
        let padded_w = width + left + right;
        let fits = weight_in == channels_in && padded_h >= kernel_h && padded_w >= kernel_w;
        if plain.groups != 1 || plain.dilation != [1, 1] || !fits || plain.stride.contains(&0) {
            return None;
        }
        Some(Self {
            padding: [top, left, bottom, right],
            kernel: [kernel_h, kernel_w],
            stride: plain.stride,
            out_h: (padded_h - kernel_h) / plain.stride[0] + 1,
            out_w: (padded_w - kernel_w) / plain.stride[1] + 1,
        })
    }
}

/// The convolution as one product of the weights with the whole batch's patch matrix.
pub fn gathered<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    geometry: &Geometry,
) -> Tensor<B, 4> {
    let [top, left, bottom, right] = geometry.padding;
    let (out_h, out_w) = (geometry.out_h, geometry.out_w);
    let [batch, channels_in, _, _] = x.dims();
    let [kernel_h, kernel_w] = geometry.kernel;
    let [stride_h, stride_w] = geometry.stride;
    let channels_out = weight.dims()[0];
    let taps = kernel_h * kernel_w;

    // Channels first, so that each kernel tap's pixels are `[Cin, N, out_h, out_w]` and the
    // stacked taps are already the patch matrix's row-major layout.
    let x = x
        .swap_dims(0, 1)
        .pad((left, right, top, bottom), PadMode::Constant(0.0));
    // The `count` input positions a kernel tap at `start` reads, `step` apart.
    let tap_positions = |start: usize, count: usize, step: usize| {
        let end = start + step * (count - 1) + 1;
        Slice::new(start as isize, Some(end as isize), step as isize)
    };
    let mut patches = Vec::with_capacity(taps);
    for i in 0..kernel_h {
        for j in 0..kernel_w {
            patches.push(x.clone().slice([
                Slice::from(..),
                Slice::from(..),
                tap_positions(i, out_h, stride_h),
                tap_positions(j, out_w, stride_w),
            ]));
        }
    }
    let patches =
        Tensor::stack::<5>(patches, 1).reshape([channels_in * taps, batch * out_h * out_w]);
    let mut out = weight
        .reshape([channels_out, channels_in * taps])
        .matmul(patches);
    if let Some(bias) = bias {
        out = out + bias.reshape([channels_out, 1]);
    }
    out.reshape([channels_out, batch, out_h, out_w])
        .swap_dims(0, 1)
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn_ndarray::NdArray;

    use super::*;
    use crate::gather::testing::assert_same_as_burn;

    type B = Autodiff<NdArray<f32>>;

    /// burn's options for a layer, as the models pass them.
    fn options(conv: &Conv2d<B>) -> PaddedConvOptions<2> {
        let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
            return PaddedConvOptions::asymmetric(conv.stride, [0, 0], [0, 0], [1, 1], 1);
        };
        PaddedConvOptions::asymmetric(conv.stride, [top, left], [bottom, right], [1, 1], 1)
    }

    /// Output and all gradients of the gathered convolution against burn's `Conv2d::forward`.
    fn check(config: Conv2dConfig, input: [usize; 4]) {
        let conv: Conv2d<B> = config.init(&Default::default());
        let weight = conv.weight.val();
        let geometry = Geometry::of(input, weight.dims(), &options(&conv)).expect("plain");
        let bias = conv.bias.as_ref().map(|bias| bias.val());
        let ours = |x| gathered(x, weight.clone(), bias.clone(), &geometry);
        assert_same_as_burn(input, ours, |x| conv.forward(x), &weight, bias.clone());
    }

    #[test]
    fn the_seeds_narrow_deep_layers_gather_and_its_wide_shallow_ones_do_not() {
        let burn = Rival::Burn;
        // Training: the 4x4 stride-2 convolution down to 2x2, the 3x3 ones at 4x4 and 8x8.
        assert!(gathers(1024, 4, true, burn));
        assert!(gathers(1024, 16, true, burn));
        assert!(gathers(512, 64, true, burn));
        assert!(!gathers(128, 64, true, burn));
        assert!(!gathers(128, 1024, true, burn));
        // Inference: only at 2x2, and the 1024-wide layers at 4x4.
        assert!(gathers(512, 4, false, burn));
        assert!(gathers(1024, 16, false, burn));
        assert!(!gathers(256, 16, false, burn));
        assert!(!gathers(512, 64, false, burn));
    }

    #[test]
    fn fewer_layers_gather_against_the_kernels() {
        let kernel = Rival::Kernel;
        // Training: at 2x2, and the 1024-wide layers at 4x4.
        assert!(gathers(512, 4, true, kernel));
        assert!(gathers(1024, 16, true, kernel));
        assert!(!gathers(512, 16, true, kernel));
        assert!(!gathers(512, 64, true, kernel));
        // Inference: the 512-wide and wider layers at 2x2.
        assert!(gathers(512, 4, false, kernel));
        assert!(!gathers(256, 4, false, kernel));
        assert!(!gathers(1024, 16, false, kernel));
    }

    #[test]
    fn groups_and_dilation_are_left_to_burn() {
        let plain = PaddedConvOptions::asymmetric([1, 1], [0, 0], [0, 0], [1, 1], 1);
        let grouped = PaddedConvOptions::asymmetric([1, 1], [0, 0], [0, 0], [1, 1], 2);
        let dilated = PaddedConvOptions::asymmetric([1, 1], [0, 0], [0, 0], [2, 2], 1);
        assert!(Geometry::of([1, 4, 2, 2], [4, 2, 1, 1], &grouped).is_none());
        assert!(Geometry::of([1, 4, 2, 2], [4, 4, 2, 2], &dilated).is_none());
        assert!(Geometry::of([1, 4, 2, 2], [4, 4, 3, 3], &plain).is_none());
        let geometry = Geometry::of([1, 4, 2, 2], [4, 4, 1, 1], &plain).unwrap();
        assert_eq!((geometry.out_h, geometry.out_w), (2, 2));
    }

    #[test]
    fn a_layer_that_gathers_goes_through_the_product() {
        // 32 output channels for 2x2 output pixels: this layer gathers in training.
        let conv: Conv2d<B> = Conv2dConfig::new([32, 32], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&Default::default());
        let x = Tensor::<B, 4>::random(
            [3, 32, 2, 2],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let values = |y: Tensor<B, 4>| y.into_data().to_vec::<f32>().unwrap();
        let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
        let geometry = Geometry::of(x.dims(), weight.dims(), &options(&conv)).unwrap();
        let burns = values(conv.forward(x.clone()));
        let gathered = values(gathered(x.clone(), weight.clone(), bias.clone(), &geometry));
        // The two differ in summation order, so the output tells which one ran.
        assert_ne!(burns, gathered);
        assert_eq!(values(conv2d(x, weight, bias, options(&conv))), gathered);
    }

    #[test]
    fn a_3x3_convolution_at_2x2_matches_burns() {
        let config =
            Conv2dConfig::new([6, 5], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        check(config, [3, 6, 2, 2]);
    }

    #[test]
    fn a_strided_4x4_convolution_down_to_2x2_matches_burns() {
        let config = Conv2dConfig::new([4, 7], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        check(config, [2, 4, 4, 4]);
    }

    #[test]
    fn uneven_padding_and_no_padding_match_burns() {
        let uneven = Conv2dConfig::new([3, 4], [2, 3])
            .with_stride([1, 2])
            .with_padding(PaddingConfig2d::Explicit(0, 2, 1, 0));
        check(uneven, [2, 3, 2, 3]);
        check(Conv2dConfig::new([3, 4], [3, 3]), [2, 3, 4, 3]);
    }
}
