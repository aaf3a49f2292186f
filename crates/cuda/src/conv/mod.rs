//! Convolutions and transposed convolutions on burn-cuda by a library's kernels, with their own
//! backward pass.
//!
//! burn-autodiff computes a convolution's gradients through the backend's
//! `conv2d_x_backward` and `conv2d_weight_backward`, which burn-cubecl autotunes. Here the
//! three passes of a layer are one [`ConvKernels`] implementation's: cuDNN's
//! ([`cudnn::CudnnConv`]) or burn-cubecl's at a fixed strategy ([`fixed::FixedConv`]). A
//! transposed convolution is a convolution's input gradient, so the same three kernels serve
//! it, the passes exchanged. The bias is added by burn's (differentiable) broadcast addition.
//!
//! f32 and bf16; other element types go to burn's operation.

pub(crate) mod cudnn;
pub(crate) mod fixed;

use std::marker::PhantomData;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode, PaddedConvOptions};
use burn::tensor::{DType, Tensor, TensorPrimitive, module};

use crate::device::Primitive;
use crate::{Gpu, GpuAutodiff};

/// A convolution's shapes and options, in the forward sense (`x` convolved to `y`).
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    /// Input `[N, Cin, H, W]`.
    pub x: [usize; 4],
    /// Weight `[Cout, Cin / groups, kh, kw]`.
    pub w: [usize; 4],
    /// Output `[N, Cout, Ho, Wo]`.
    pub y: [usize; 4],
    /// Stride, symmetric padding, dilation and groups.
    pub options: ConvOptions<2>,
}

impl Conv {
    /// The convolution of `x` by `w`, its output's size from the options.
    fn forward(x: [usize; 4], w: [usize; 4], options: ConvOptions<2>) -> Option<Self> {
        let side = |axis: usize| {
            let span = options.dilation[axis] * (w[2 + axis] - 1) + 1;
            let padded = x[2 + axis] + 2 * options.padding[axis];
            padded
                .checked_sub(span)
                .map(|room| room / options.stride[axis] + 1)
        };
        let fits = x[1] == w[1] * options.groups && w[0].is_multiple_of(options.groups);
        let y = [x[0], w[0], side(0)?, side(1)?];
        (fits && options.stride.iter().all(|&s| s > 0)).then_some(Self { x, w, y, options })
    }

    /// The convolution whose input gradient is the transposed convolution of `x` (its `y`) by
    /// `w` `[Cin, Cout / groups, kh, kw]`.
    fn transposed(x: [usize; 4], w: [usize; 4], options: &ConvTransposeOptions<2>) -> Option<Self> {
        let side = |axis: usize| {
            let span = options.dilation[axis] * (w[2 + axis] - 1) + 1;
            ((x[2 + axis] - 1) * options.stride[axis] + span + options.padding_out[axis])
                .checked_sub(2 * options.padding[axis])
                .filter(|&side| side > 0)
        };
        let input = [x[0], w[1] * options.groups, side(0)?, side(1)?];
        let conv = ConvOptions::new(
            options.stride,
            options.padding,
            options.dilation,
            options.groups,
        );
        Self::forward(input, w, conv).filter(|conv| conv.y == x)
    }

    /// Padding, stride and dilation (height, width each) and groups, as one key.
    pub(crate) fn geometry(&self) -> [usize; 7] {
        let o = &self.options;
        [
            o.padding[0],
            o.padding[1],
            o.stride[0],
            o.stride[1],
            o.dilation[0],
            o.dilation[1],
            o.groups,
        ]
    }
}

/// One library's three passes of a convolution, on packed or strided primitives of one dtype
/// (f32 or bf16); each returns a new packed tensor.
pub(crate) trait ConvKernels: Send + Sync + std::fmt::Debug + 'static {
    /// `y` from `x` and `w`.
    fn forward(conv: &Conv, x: Primitive, w: Primitive) -> Primitive;
    /// The input's gradient (shape `conv.x`) from the output's and the weight.
    fn input_grad(conv: &Conv, dy: Primitive, w: Primitive) -> Primitive;
    /// The weight's gradient (shape `conv.w`) from the input and the output's gradient.
    fn weight_grad(conv: &Conv, x: Primitive, dy: Primitive) -> Primitive;
}

/// A convolution (or, if `transposed`, the transposed convolution whose input gradient it is)
/// and the backward step that goes with it.
#[derive(Debug)]
pub(crate) struct Step<K> {
    conv: Conv,
    transposed: bool,
    kernels: PhantomData<fn() -> K>,
}

impl<K: ConvKernels> Step<K> {
    fn forward(&self, x: Primitive, w: Primitive) -> Primitive {
        match self.transposed {
            false => K::forward(&self.conv, x, w),
            true => K::input_grad(&self.conv, x, w),
        }
    }
}

impl<K: ConvKernels> Backward<Gpu, 2> for Step<K> {
    /// The input's and the weight's nodes.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (x_state, w_state) = ops.state;
        let x: Primitive = checkpointer.retrieve_node_output(x_state);
        let w: Primitive = checkpointer.retrieve_node_output(w_state);
        let dy = grads.consume::<Gpu>(&ops.node);
        let [x_node, w_node] = ops.parents;
        let conv = &self.conv;
        if let Some(node) = x_node {
            let grad = match self.transposed {
                false => K::input_grad(conv, dy.clone(), w),
                true => K::forward(conv, dy.clone(), w),
            };
            grads.register::<Gpu>(node.id, grad);
        }
        if let Some(node) = w_node {
            let grad = match self.transposed {
                false => K::weight_grad(conv, x, dy),
                true => K::weight_grad(conv, dy, x),
            };
            grads.register::<Gpu>(node.id, grad);
        }
    }
}

/// The two backends the kernels serve: on [`Gpu`] a step is its forward pass; on its autodiff
/// decorator the step is also recorded for the backward pass.
pub(crate) trait OwnConv: burn::tensor::backend::Backend {
    fn run<K: ConvKernels>(
        step: Step<K>,
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
    ) -> Tensor<Self, 4>;
}

impl OwnConv for Gpu {
    fn run<K: ConvKernels>(
        step: Step<K>,
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let y = step.forward(x.into_primitive().tensor(), w.into_primitive().tensor());
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }
}

impl OwnConv for GpuAutodiff {
    fn run<K: ConvKernels>(
        step: Step<K>,
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let (x, w) = (x.into_primitive().tensor(), w.into_primitive().tensor());
        let y = step.forward(x.primitive.clone(), w.primitive.clone());
        Tensor::from_primitive(TensorPrimitive::Float(crate::tracked::record(
            step, &x, &w, y,
        )))
    }
}

/// Whether the kernels take these operands: f32 or bf16, all of one type.
fn supported<const D: usize, B: burn::tensor::backend::Backend>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 4>,
) -> bool {
    matches!(x.dtype(), DType::F32 | DType::BF16) && weight.dtype() == x.dtype()
}

/// `y + bias` broadcast over the channels.
fn add_bias<B: burn::tensor::backend::Backend>(
    y: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    match bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            y + bias.reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

/// burn's `module::conv2d` by `K`'s kernels (asymmetric padding as a pad first); burn's own
/// for other element types or shapes the options do not fit.
pub(crate) fn conv2d<B: OwnConv, K: ConvKernels>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    if !supported(&x, &weight) {
        return module::conv2d(x, weight, bias, options);
    }
    let mut plain = options.options.clone();
    let x = match options.padding_end {
        Some([bottom, right]) => {
            let [top, left] = plain.padding;
            plain.padding = [0, 0];
            x.pad((left, right, top, bottom), PadMode::Constant(0.0))
        }
        None => x,
    };
    match Conv::forward(x.dims(), weight.dims(), plain) {
        Some(conv) => {
            let step = Step::<K> {
                conv,
                transposed: false,
                kernels: PhantomData,
            };
            add_bias(B::run(step, x, weight), bias)
        }
        None => module::conv2d(x, weight, bias, options),
    }
}

/// burn's `module::conv_transpose2d` by `K`'s kernels; burn's own for other element types or
/// shapes the options do not fit.
pub(crate) fn conv_transpose2d<B: OwnConv, K: ConvKernels>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    let conv = supported(&x, &weight)
        .then(|| Conv::transposed(x.dims(), weight.dims(), &options))
        .flatten();
    match conv {
        Some(conv) => {
            let step = Step::<K> {
                conv,
                transposed: true,
                kernels: PhantomData,
            };
            add_bias(B::run(step, x, weight), bias)
        }
        None => module::conv_transpose2d(x, weight, bias, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_burns_formulas() {
        let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let conv = Conv::forward([4, 8, 9, 10], [16, 8, 3, 3], options).unwrap();
        assert_eq!(conv.y, [4, 16, 5, 5]);
        let grouped = ConvOptions::new([1, 1], [0, 0], [2, 2], 2);
        let conv = Conv::forward([1, 8, 9, 9], [6, 4, 3, 3], grouped).unwrap();
        assert_eq!(conv.y, [1, 6, 5, 5]);
        assert!(
            Conv::forward(
                [1, 8, 2, 2],
                [6, 8, 3, 3],
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
            )
            .is_none()
        );
    }

    #[test]
    fn a_transposed_convolution_is_the_input_gradient_of_its_convolution() {
        // The seed's 4×4 stride-2 upsampling: 8×8 → 16×16.
        let options = ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1);
        let conv = Conv::transposed([2, 64, 8, 8], [64, 32, 4, 4], &options).unwrap();
        assert_eq!((conv.x, conv.y), ([2, 32, 16, 16], [2, 64, 8, 8]));
        let padded = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
        let conv = Conv::transposed([1, 4, 5, 5], [4, 3, 3, 3], &padded).unwrap();
        assert_eq!(conv.x, [1, 3, 10, 10]);
    }
}
