//! Convolutions for burn-flex, batch-parallel, with their own backward pass.
//!
//! burn-flex convolves one image after another, with serial layout conversions around each
//! product, and burn computes a convolution's weight gradient as a convolution of the input and
//! output gradient with batch and channels swapped: both operands copied through flex's scalar
//! strided iterator, then a product per input channel with a kernel as large as the feature map.
//! Here the batch is split into a few parts per thread (per image its patch matrix, then one
//! gemm), and the weight gradient is a sum of one product per image, `patches(x_n) × dy_nᵀ`.
//!
//! f32 only; other element types, and layers that are not plain (groups, dilation, asymmetric
//! padding, output padding), go to burn.

mod batch;
mod im2col;
mod winograd;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{DType, Tensor, TensorPrimitive, module};
use burn_flex::FlexTensor;
use ddpm_ops::gather::{self, Rival};

use self::im2col::Geometry;
use crate::par_rows::Layout;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// Whether the operands are f32, the only element type the kernels handle.
fn all_f32<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: &Option<Tensor<B, 1>>,
) -> bool {
    let bias = bias.iter().map(|bias| bias.dtype());
    [x.dtype(), weight.dtype()]
        .into_iter()
        .chain(bias)
        .all(|dtype| dtype == DType::F32)
}

/// The geometry of a plain f32 convolution, or `None` (then burn computes it).
fn conv_geometry<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: &Option<Tensor<B, 1>>,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let plain = options.groups == 1 && options.dilation == [1, 1];
    let f32s = all_f32(x, weight, bias);
    let geometry = Geometry::new(x.dims(), weight.dims(), options.stride, options.padding)?;
    let bias_fits = bias
        .as_ref()
        .is_none_or(|b| b.dims() == [geometry.channels_out]);
    (plain && f32s && bias_fits).then_some(geometry)
}

/// A plain transposed convolution of `x` `[N, Cin, H, W]` with `weight` `[Cin, Cout, kh, kw]` is
/// the input gradient of the convolution whose input has the transposed one's output shape and
/// whose weight is the same tensor: that convolution's geometry, or `None`.
fn conv_transpose_geometry<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: &Option<Tensor<B, 1>>,
    options: &ConvTransposeOptions<2>,
) -> Option<Geometry> {
    let plain = options.groups == 1 && options.dilation == [1, 1] && options.padding_out == [0, 0];
    let f32s = all_f32(x, weight, bias);
    let [batch, _, height, width] = x.dims();
    let [_, channels_out, kernel_h, kernel_w] = weight.dims();
    let side = |size: usize, axis: usize, kernel: usize| {
        let full = size.checked_sub(1)? * options.stride[axis] + kernel;
        full.checked_sub(2 * options.padding[axis])
            .filter(|&side| side > 0)
    };
    let output = [
        batch,
        channels_out,
        side(height, 0, kernel_h)?,
        side(width, 1, kernel_w)?,
    ];
    let geometry = Geometry::new(output, weight.dims(), options.stride, options.padding)?;
    let fits = [geometry.out_h, geometry.out_w] == [height, width]
        && bias.as_ref().is_none_or(|b| b.dims() == [channels_out]);
    (plain && f32s && fits).then_some(geometry)
}

/// Registers the operation for autodiff: `$x` and `$weight` are kept for the backward pass.
macro_rules! tracked {
    ($step:expr, $parents:expr, $x:expr, $weight:expr, $output:expr) => {
        match $step
            .prepare::<NoCheckpointing>($parents)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint($x), prep.checkpoint($weight));
                prep.finish(state, $output)
            }
            OpsKind::UnTracked(prep) => prep.finish($output),
        }
    };
}

/// The two backends the kernels serve: on flex a [`Step`] is its forward pass; on its autodiff
/// decorator the step is also recorded for the backward pass.
pub(crate) trait OwnConv: Backend {
    fn run(
        step: Step,
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 4>;
}

impl OwnConv for Flex {
    fn run(
        step: Step,
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 4> {
        let bias = bias.map(|bias| bias.into_primitive().tensor());
        let (x, weight) = (
            x.into_primitive().tensor(),
            weight.into_primitive().tensor(),
        );
        let output = step.forward(&x, &weight, bias.as_ref());
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }
}

impl OwnConv for FlexAutodiff {
    fn run(
        step: Step,
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 4> {
        let (x, weight) = (
            x.into_primitive().tensor(),
            weight.into_primitive().tensor(),
        );
        let output = match bias.map(|bias| bias.into_primitive().tensor()) {
            Some(bias) => {
                let output = step.forward(&x.primitive, &weight.primitive, Some(&bias.primitive));
                let parents = [x.node.clone(), weight.node.clone(), bias.node.clone()];
                tracked!(step, parents, &x, &weight, output)
            }
            None => {
                let output = step.forward(&x.primitive, &weight.primitive, None);
                let parents = [x.node.clone(), weight.node.clone()];
                tracked!(step, parents, &x, &weight, output)
            }
        };
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }
}

/// burn's `module::conv2d`, by our kernels where the layer is plain; by Winograd's where
/// `WINOGRAD` and the layer suits them.
pub(crate) fn conv2d<B: OwnConv, const WINOGRAD: bool>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    let symmetric = options.padding_end.is_none();
    match conv_geometry(&x, &weight, &bias, &options.options).filter(|_| symmetric) {
        Some(geometry) => B::run(Step::conv(geometry, WINOGRAD), x, weight, bias),
        None => module::conv2d(x, weight, bias, options),
    }
}

/// burn's `module::conv_transpose2d`, by our kernels where the layer is plain.
pub(crate) fn conv_transpose2d<B: OwnConv>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    match conv_transpose_geometry(&x, &weight, &bias, &options) {
        Some(geometry) => B::run(Step::conv_transpose(geometry), x, weight, bias),
        None => module::conv_transpose2d(x, weight, bias, options),
    }
}

/// [`conv2d`], gathered over the batch where that beats these kernels.
pub(crate) fn conv2d_gathering<B: OwnConv, const WINOGRAD: bool>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    match gather::conv::Geometry::gathering(&x, &weight, &options, Rival::Kernel) {
        Some(geometry) => gather::conv::gathered(x, weight, bias, &geometry),
        None => conv2d::<B, WINOGRAD>(x, weight, bias, options),
    }
}

/// [`conv_transpose2d`], gathered over the batch where that pays.
pub(crate) fn conv_transpose2d_gathering<B: OwnConv>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    match gather::conv_transpose::Geometry::gathering(&x, &weight, &options) {
        Some(geometry) => gather::conv_transpose::gathered(x, weight, bias, &geometry),
        None => conv_transpose2d(x, weight, bias, options),
    }
}

/// A convolution or a transposed convolution of `geometry`: its forward pass, and the backward
/// step whose parents are its input, weight and, if it has one, bias.
#[derive(Debug)]
pub(crate) struct Step {
    geometry: Geometry,
    kind: Kind,
}

/// What a [`Step`] computes, and with which kernels.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A convolution by patch matrices ([`batch`]).
    Conv,
    /// A convolution by [`winograd`]'s kernels, in all three passes.
    Winograd,
    /// A transposed convolution (a convolution's input gradient) by patch matrices.
    Transposed,
}

impl Step {
    /// A convolution, by Winograd's kernels if `winograd` and they apply.
    fn conv(geometry: Geometry, winograd: bool) -> Self {
        let kind = match winograd && winograd::applies(&geometry) {
            true => Kind::Winograd,
            false => Kind::Conv,
        };
        Self { geometry, kind }
    }

    fn conv_transpose(geometry: Geometry) -> Self {
        Self {
            geometry,
            kind: Kind::Transposed,
        }
    }

    fn forward(
        &self,
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
    ) -> FlexTensor {
        let g = &self.geometry;
        let bias = bias.map(values);
        let (x, weight, bias) = (values(x), values(weight), bias.as_deref());
        match self.kind {
            Kind::Conv => flex(batch::forward(&x, &weight, bias, g), conv_out(g)),
            Kind::Winograd => flex(winograd::forward(&x, &weight, bias, g), conv_out(g)),
            Kind::Transposed => flex(batch::transposed(&weight, &x, bias, g), conv_in(g)),
        }
    }
}

/// A convolution's input shape (a transposed one's output).
fn conv_in(g: &Geometry) -> [usize; 4] {
    [g.batch, g.channels_in, g.in_h, g.in_w]
}

/// A convolution's output shape (a transposed one's input).
fn conv_out(g: &Geometry) -> [usize; 4] {
    [g.batch, g.channels_out, g.out_h, g.out_w]
}

impl<const N: usize> Backward<Flex, N> for Step {
    /// The input's and the weight's nodes.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let g = &self.geometry;
        let (x_state, weight_state) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let weight: FlexTensor = checkpointer.retrieve_node_output(weight_state);
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, dy) = (values(&x), values(&weight), values(&dy));
        let mut parents = ops.parents.into_iter();
        let (x_node, weight_node) = (parents.next().flatten(), parents.next().flatten());
        if let Some(node) = x_node {
            let grad = match self.kind {
                Kind::Conv => flex(batch::transposed(&weight, &dy, None, g), conv_in(g)),
                Kind::Winograd => flex(winograd::input_grad(&weight, &dy, g), conv_in(g)),
                Kind::Transposed => flex(batch::forward(&dy, &weight, None, g), conv_out(g)),
            };
            grads.register::<Flex>(node.id, grad);
        }
        if let Some(node) = weight_node {
            let grad = match self.kind {
                Kind::Conv => batch::weight_grad(&x, &dy, g),
                Kind::Winograd => winograd::weight_grad(&x, &dy, g),
                Kind::Transposed => batch::weight_grad(&dy, &x, g),
            };
            let shape = [g.channels_out, g.channels_in, g.kernel[0], g.kernel[1]];
            grads.register::<Flex>(node.id, flex(grad, shape));
        }
        if let Some(node) = parents.next().flatten() {
            let shape = match self.kind {
                Kind::Conv | Kind::Winograd => conv_out(g),
                Kind::Transposed => conv_in(g),
            };
            let grad = batch::channel_sums(&dy, Layout::of(shape));
            let channels = grad.len();
            grads.register::<Flex>(node.id, flex(grad, [channels]));
        }
    }
}

#[cfg(test)]
mod tests;
