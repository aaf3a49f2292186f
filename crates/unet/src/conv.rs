//! Convolutions on small feature maps, as one matrix product over the whole batch.
//!
//! burn-flex (like most im2col convolutions) multiplies the weights with one image's patches at
//! a time, and computes the weight gradient as a convolution of the swapped input with the
//! swapped output gradient. When a feature map has shrunk to a few pixels and the layer is wide,
//! each of those products is thin, and the weights (up to 64 MiB in the seed's deepest block)
//! are packed and streamed once per image. Gathering the patches of the whole batch first makes
//! the forward pass and both gradients one product each over `batch × pixels` columns.
//!
//! Measured on burn-flex, 2 threads, the seed's layers at batch 8, forward + backward (ms, burn's
//! convolution → gathered): 1024→1024 4×4 stride 2 (4×4 → 2×2) 295 → 63; 2048→512 3×3 at 2×2
//! 138 → 32; 1024→1024 3×3 at 4×4 152 → 65; 512→512 3×3 at 8×8 81 → 66; but 128→128 at 32×32
//! 84 → 125. Forward alone, gathering pays only at 2×2 and for the 1024-wide layers at 4×4
//! (1024→1024: 42 → 25 ms; 1024→256: 11 → 15 ms). Hence two thresholds on output channels per
//! output pixel, one for training (autodiff) and one for inference.
//!
//! All of it pays where a backend convolves one image at a time (burn-flex, burn-ndarray); a
//! backend whose convolution kernels already span the batch (burn-cuda's implicit GEMM) only gets
//! the patches' extra memory traffic. Hence [`set_batch_gathering`], a process-wide switch.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Slice, Tensor, backend::Backend};

use crate::kernels::conv_kernels;

/// Output channels per output pixel from which a training step gathers the batch's patches.
const GATHER_TRAINING_FROM: usize = 8;
/// The same for inference, where burn's forward convolution is the stronger rival.
pub(crate) const GATHER_INFERENCE_FROM: usize = 64;
/// Both thresholds against a [registered kernel](crate::register_conv_kernels) instead of burn's
/// convolution (measured against the `ddpm` binary's flex kernels, batch 8: in training 512→512
/// 3×3 at 8×8 takes 52 ms there and 70 gathered, 1024→1024 at 4×4 74 and 68, 2048→512 at 2×2 66
/// and 28; in inference 1024→1024 at 4×4 16 and 23 ms, 2048→512 at 2×2 15 and 11).
const GATHER_TRAINING_FROM_KERNEL: usize = 64;
const GATHER_INFERENCE_FROM_KERNEL: usize = 128;

static BATCH_GATHERING: AtomicBool = AtomicBool::new(true);

/// Whether SimpleUnet may compute its narrow deep layers as batch-wide matrix products (the
/// default) or always uses burn's convolutions. Process-wide; the values agree up to summation
/// order either way. Turn it off for backends with batch-wide convolution kernels (GPUs).
pub fn set_batch_gathering(enabled: bool) {
    BATCH_GATHERING.store(enabled, Ordering::Relaxed);
}

/// See [`set_batch_gathering`].
pub fn batch_gathering() -> bool {
    BATCH_GATHERING.load(Ordering::Relaxed)
}

/// `conv.forward(x)`, computed as one batch-wide matrix product when batch gathering is on, the
/// layer is plain (no groups, no dilation, explicit or no padding) and [`gathers`] says it pays;
/// otherwise by the [registered kernel](crate::register_conv_kernels) for `B` if there is one
/// and the padding is symmetric, else by burn.
pub(crate) fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let training = B::ad_enabled(&x.device());
    let Some(geometry) = Geometry::of(conv, x.dims()) else {
        return conv.forward(x);
    };
    let kernels = conv_kernels::<B>();
    let rival = match kernels {
        Some(_) => Rival::Kernel,
        None => Rival::Burn,
    };
    let channels_out = conv.weight.dims()[0];
    if batch_gathering() && gathers(channels_out, geometry.out_pixels(), training, rival) {
        return gathered(conv, x, &geometry);
    }
    match (kernels, geometry.options(conv)) {
        (Some(kernels), Some(options)) => {
            let bias = conv.bias.as_ref().map(|bias| bias.val());
            (kernels.conv2d)(x, conv.weight.val(), bias, options)
        }
        _ => conv.forward(x),
    }
}

/// What a layer that does not gather runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rival {
    /// burn's convolution.
    Burn,
    /// The kernel registered for the backend.
    Kernel,
}

/// Whether gathering the batch's patches beats the `rival` for a layer with `channels_out`
/// output channels and `out_pixels` output pixels per image.
fn gathers(channels_out: usize, out_pixels: usize, training: bool, rival: Rival) -> bool {
    let from = match (rival, training) {
        (Rival::Burn, true) => GATHER_TRAINING_FROM,
        (Rival::Burn, false) => GATHER_INFERENCE_FROM,
        (Rival::Kernel, true) => GATHER_TRAINING_FROM_KERNEL,
        (Rival::Kernel, false) => GATHER_INFERENCE_FROM_KERNEL,
    };
    channels_out >= from * out_pixels
}

/// Padding and output size of a plain convolution.
struct Geometry {
    /// Top, left, bottom, right.
    padding: [usize; 4],
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    /// `None` for what [`gathered`] does not handle: groups, dilation, `Same` padding, or a
    /// kernel larger than the padded input (burn's convolution reports that).
    fn of<B: Backend>(conv: &Conv2d<B>, [_, _, height, width]: [usize; 4]) -> Option<Self> {
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Same => return None,
        };
        let [kernel_h, kernel_w] = conv.kernel_size;
        let padded_h = height + padding[0] + padding[2];
        let padded_w = width + padding[1] + padding[3];
        let plain = conv.groups == 1 && conv.dilation == [1, 1];
        if !plain || padded_h < kernel_h || padded_w < kernel_w {
            return None;
        }
        Some(Self {
            padding,
            out_h: (padded_h - kernel_h) / conv.stride[0] + 1,
            out_w: (padded_w - kernel_w) / conv.stride[1] + 1,
        })
    }

    /// burn's options for the layer, if its padding is the same on both sides of each axis.
    fn options<B: Backend>(&self, conv: &Conv2d<B>) -> Option<ConvOptions<2>> {
        let [top, left, bottom, right] = self.padding;
        (top == bottom && left == right)
            .then(|| ConvOptions::new(conv.stride, [top, left], conv.dilation, conv.groups))
    }

    fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }
}

/// The convolution as `W [Cout, Cin·kh·kw] × patches [Cin·kh·kw, N·out_h·out_w]`.
fn gathered<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, geometry: &Geometry) -> Tensor<B, 4> {
    let [top, left, bottom, right] = geometry.padding;
    let (out_h, out_w) = (geometry.out_h, geometry.out_w);
    let [batch, channels_in, _, _] = x.dims();
    let [kernel_h, kernel_w] = conv.kernel_size;
    let [stride_h, stride_w] = conv.stride;
    let weight = conv.weight.val();
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
    if let Some(bias) = &conv.bias {
        out = out + bias.val().reshape([channels_out, 1]);
    }
    out.reshape([channels_out, batch, out_h, out_w])
        .swap_dims(0, 1)
}

/// What the gathered layers' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::{Distribution, Tensor, Tolerance};

    /// A layer computed two ways, `ours` and `burns`, agrees on a random input of shape `input`:
    /// the output, and the gradients of the input, `weight` and `bias` under a loss that weighs
    /// every output differently.
    pub(crate) fn assert_same_as_burn<B: AutodiffBackend<FloatElem = f32>>(
        input: [usize; 4],
        ours: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
        burns: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
        weight: &Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
    ) {
        let device = weight.device();
        let x =
            Tensor::<B, 4>::random(input, Distribution::Normal(0.0, 1.0), &device).require_grad();
        let (ours, burns) = (ours(x.clone()), burns(x.clone()));
        assert_eq!(ours.dims(), burns.dims());
        let tolerance = Tolerance::<f32>::absolute(1e-5);
        ours.to_data()
            .assert_approx_eq::<f32>(&burns.to_data(), tolerance);
        let weights = Tensor::<B, 4>::random(burns.dims(), Distribution::Default, &device);
        let our_grads = (ours * weights.clone()).sum().backward();
        let burn_grads = (burns * weights).sum().backward();
        for tensor in [&x, weight] {
            let ours = tensor.grad(&our_grads).expect("a gradient").into_data();
            let burns = tensor.grad(&burn_grads).expect("a gradient").into_data();
            ours.assert_approx_eq::<f32>(&burns, tolerance);
        }
        let bias = bias.expect("the layer has a bias");
        let ours = bias.grad(&our_grads).expect("a gradient").into_data();
        ours.assert_approx_eq::<f32>(
            &bias.grad(&burn_grads).expect("a gradient").into_data(),
            tolerance,
        );
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;
    use burn_ndarray::NdArray;

    use super::*;
    use crate::conv::testing::assert_same_as_burn;

    type B = Autodiff<NdArray<f32>>;

    /// Output and all gradients of the gathered convolution against burn's `Conv2d::forward`.
    fn check(config: Conv2dConfig, input: [usize; 4]) {
        let conv: Conv2d<B> = config.init(&Default::default());
        let geometry = Geometry::of(&conv, input).expect("a plain convolution");
        let ours = |x| gathered(&conv, x, &geometry);
        let bias = conv.bias.as_ref().map(|bias| bias.val());
        assert_same_as_burn(input, ours, |x| conv.forward(x), &conv.weight.val(), bias);
    }

    #[test]
    fn batch_gathering_can_be_switched_off() {
        // 32 output channels for 2x2 output pixels: this layer gathers in training.
        let device = Default::default();
        let conv: Conv2d<B> = Conv2dConfig::new([32, 32], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<B, 4>::random([3, 32, 2, 2], Distribution::Normal(0.0, 1.0), &device);
        let values = |y: Tensor<B, 4>| y.into_data().to_vec::<f32>().unwrap();
        let geometry = Geometry::of(&conv, x.dims()).unwrap();
        let burns = values(conv.forward(x.clone()));
        let gathered = values(gathered(&conv, x.clone(), &geometry));
        // The two differ in summation order, so the output tells which one ran.
        assert_ne!(burns, gathered);

        assert!(batch_gathering());
        assert_eq!(values(conv2d(&conv, x.clone())), gathered);
        set_batch_gathering(false);
        let off = values(conv2d(&conv, x));
        set_batch_gathering(true);
        assert_eq!(off, burns);
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
    fn fewer_layers_gather_against_a_registered_kernel() {
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
    fn same_padding_groups_and_dilation_are_left_to_burn() {
        let device = Default::default();
        let input = [1, 4, 2, 2];
        let same = Conv2dConfig::new([4, 4], [3, 3]).with_padding(PaddingConfig2d::Same);
        let grouped = Conv2dConfig::new([4, 4], [1, 1]).with_groups(2);
        let dilated = Conv2dConfig::new([4, 4], [2, 2]).with_dilation([2, 2]);
        let plain = Conv2dConfig::new([4, 4], [1, 1]);
        for config in [same, grouped, dilated] {
            assert!(Geometry::of(&config.init::<B>(&device), input).is_none());
        }
        let geometry = Geometry::of(&plain.init::<B>(&device), input).unwrap();
        assert_eq!((geometry.out_h, geometry.out_w), (2, 2));
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
