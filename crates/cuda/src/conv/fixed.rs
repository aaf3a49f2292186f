//! The three passes of a convolution by burn-cubecl's own kernels at a fixed strategy: an
//! implicit GEMM on tensor cores where its setup takes the shape, else the direct kernel. One
//! compilation per shape, no candidates benchmarked; except that burn-cubecl 0.21's direct
//! weight gradient and its stride-1 direct input gradient call its autotuned kernels inside.

use burn::tensor::Shape;
use burn::tensor::ops::ConvTransposeOptions;
use burn_cubecl::kernel::conv::{
    ConvStrategy, ConvTranspose2dStrategy, conv_data_backward, conv_forward, conv_transpose2d,
    conv_weight_backward,
};

use super::{Conv, ConvKernels};
use crate::device::Primitive;

/// burn-cubecl's convolutions at fixed strategies.
#[derive(Debug)]
pub(crate) struct FixedConv;

impl ConvKernels for FixedConv {
    fn forward(conv: &Conv, x: Primitive, w: Primitive) -> Primitive {
        let options = conv.options.clone();
        conv_forward(
            x.clone(),
            w.clone(),
            None,
            options.clone(),
            ConvStrategy::ImplicitGemm,
        )
        .or_else(|_| conv_forward(x, w, None, options, ConvStrategy::Direct))
        .expect("burn-cubecl's direct convolution takes any plain layer")
    }

    fn input_grad(conv: &Conv, dy: Primitive, w: Primitive) -> Primitive {
        let o = &conv.options;
        if o.stride == [1, 1] && o.groups == 1 {
            let gemm = conv_data_backward(
                dy.clone(),
                w.clone(),
                Shape::new(conv.x),
                o.clone(),
                ConvStrategy::ImplicitGemm,
            );
            if let Ok(dx) = gemm {
                return dx;
            }
        }
        // The input gradient is the transposed convolution; its direct kernel is not tuned.
        conv_transpose2d(
            dy,
            w,
            None,
            transposed(conv),
            ConvTranspose2dStrategy::Direct,
        )
        .expect("burn-cubecl's direct transposed convolution takes any plain layer")
    }

    fn weight_grad(conv: &Conv, x: Primitive, dy: Primitive) -> Primitive {
        let options = conv.options.clone();
        let shape = Shape::new(conv.w);
        conv_weight_backward(
            x.clone(),
            dy.clone(),
            shape.clone(),
            options.clone(),
            ConvStrategy::ImplicitGemm,
        )
        .or_else(|_| conv_weight_backward(x, dy, shape, options, ConvStrategy::Direct))
        .expect("burn-cubecl's direct weight gradient takes any plain layer")
    }
}

/// The transposed convolution that maps `conv`'s output back to its input's shape: the
/// output padding covers the rows and columns a stride skipped.
fn transposed(conv: &Conv) -> ConvTransposeOptions<2> {
    let o = &conv.options;
    let produced = |axis: usize| {
        (conv.y[2 + axis] - 1) * o.stride[axis] + o.dilation[axis] * (conv.w[2 + axis] - 1) + 1
            - 2 * o.padding[axis]
    };
    let padding_out = [conv.x[2] - produced(0), conv.x[3] - produced(1)];
    ConvTransposeOptions::new(o.stride, o.padding, padding_out, o.dilation, o.groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transposed layer read as a convolution and turned back gives its own options.
    #[test]
    fn the_input_gradient_is_the_layers_own_transposed_convolution() {
        for options in [
            ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
            ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1),
            ConvTransposeOptions::new([3, 2], [0, 1], [2, 1], [1, 2], 1),
        ] {
            let conv = Conv::transposed([2, 4, 5, 6], [4, 3, 3, 3], &options).unwrap();
            let back = transposed(&conv);
            assert_eq!(
                (back.stride, back.padding, back.padding_out, back.dilation),
                (
                    options.stride,
                    options.padding,
                    options.padding_out,
                    options.dilation
                )
            );
        }
    }
}
