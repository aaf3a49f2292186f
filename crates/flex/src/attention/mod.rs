//! The paper U-Net's self-attention for burn-flex: per image three products and a fused softmax
//! forward, five products and a fused softmax gradient backward, images in parallel (training
//! on flex's autodiff decorator, inference on flex).
//!
//! burn's operations transpose `q` and the weights as strided views, which burn-flex copies
//! value by value, and run the softmax and its gradient as separate passes on one thread. See
//! [`kernel`] for the arithmetic.

mod kernel;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;

use self::kernel::Shape;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// The batch's shape, if the kernel handles these inputs: f32, and `q`, `k` and `v` of one shape
/// (burn's operations take the rest, and report a mismatch).
fn kernel_shape<B: Backend>(q: &Tensor<B, 3>, k: &Tensor<B, 3>, v: &Tensor<B, 3>) -> Option<Shape> {
    let dims @ [images, channels, positions] = q.dims();
    let same = k.dims() == dims && v.dims() == dims && q.dtype() == DType::F32;
    same.then_some(Shape {
        images,
        channels,
        positions,
    })
}

/// Inference: attention on flex (f32; other types by burn's operations).
pub(crate) fn attention(
    q: Tensor<Flex, 3>,
    k: Tensor<Flex, 3>,
    v: Tensor<Flex, 3>,
) -> Tensor<Flex, 3> {
    let Some(shape) = kernel_shape(&q, &k, &v) else {
        return ddpm_ops::attention(q, k, v);
    };
    let [q, k, v] = [q, k, v].map(|t| t.into_primitive().tensor());
    let (out, _) = kernel::forward(&values(&q), &values(&k), &values(&v), shape);
    Tensor::from_primitive(TensorPrimitive::Float(flex(out, shape.dims())))
}

/// Training: attention recorded for the backward pass (f32; other types by burn's operations).
pub(crate) fn attention_tracked(
    q: Tensor<FlexAutodiff, 3>,
    k: Tensor<FlexAutodiff, 3>,
    v: Tensor<FlexAutodiff, 3>,
) -> Tensor<FlexAutodiff, 3> {
    let Some(shape) = kernel_shape(&q, &k, &v) else {
        return ddpm_ops::attention(q, k, v);
    };
    let [q, k, v] = [q, k, v].map(|t| t.into_primitive().tensor());
    let (out, weights) = kernel::forward(
        &values(&q.primitive),
        &values(&k.primitive),
        &values(&v.primitive),
        shape,
    );
    let step = AttentionStep {
        inputs: [&q, &k, &v].map(|t| t.primitive.clone()),
        weights,
        shape,
    };
    let parents = [&q, &k, &v].map(|t| t.node.clone());
    let output = step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateless(flex(out, shape.dims()));
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The backward step of [`attention_tracked`], whose parents are `q`, `k` and `v`. Keeps the
/// inputs and the attention weights.
#[derive(Debug)]
struct AttentionStep {
    inputs: [FlexTensor; 3],
    weights: Vec<f32>,
    shape: Shape,
}

impl Backward<Flex, 3> for AttentionStep {
    type State = ();

    fn backward(self, ops: Ops<(), 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Flex>(&ops.node);
        let [q, k, v] = &self.inputs;
        let (q, k, v) = (values(q), values(k), values(v));
        let gradients = kernel::backward([&q, &k, &v], &self.weights, &values(&dout), self.shape);
        let dims = self.shape.dims();
        let [q_node, k_node, v_node] = ops.parents;
        for (node, gradient) in [
            (q_node, gradients.q),
            (k_node, gradients.k),
            (v_node, gradients.v),
        ] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex(gradient, dims));
            }
        }
    }
}

#[cfg(test)]
mod tests;
