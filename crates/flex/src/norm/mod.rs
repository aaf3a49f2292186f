//! SimpleUnet's ReLU + BatchNorm for burn-flex: one parallel pass each way (training on flex's
//! autodiff decorator, inference on flex).
//!
//! burn computes the pair as about 8 operations forward and 15 backward over the activations
//! (ReLU, sums, centring, squares, broadcast products and their gradients), most of which
//! burn-flex runs on one thread. Here the forward pass is two reductions and one multiply-add
//! per value, the backward pass one reduction and one multiply-add per value, each spread over
//! the rows of the batch (see [`kernel`]).

mod kernel;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::DType;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;
use ddpm_ops::NormalizedBatch;

use self::kernel::Normalization;
use crate::par_rows::Layout;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// Inference: `relu(x)·scale[c] + offset[n, c]` (f32; other types by burn's operations).
pub(crate) fn relu_scale_shift(
    x: Tensor<Flex, 4>,
    scale: Tensor<Flex, 1>,
    offset: Tensor<Flex, 2>,
) -> Tensor<Flex, 4> {
    if x.dtype() != DType::F32 {
        return ddpm_ops::relu_scale_shift(x, scale, offset);
    }
    let shape = x.dims();
    let [x, scale, offset] = [
        x.into_primitive().tensor(),
        scale.into_primitive().tensor(),
        offset.into_primitive().tensor(),
    ];
    let y = kernel::relu_scale_shift(
        &values(&x),
        &values(&scale),
        &values(&offset),
        Layout::of(shape),
    );
    Tensor::from_primitive(TensorPrimitive::Float(flex(y, shape)))
}

/// Training: ReLU, then BatchNorm with the batch's statistics, recorded for the backward pass
/// (f32; other types by burn's operations).
pub(crate) fn relu_batch_norm(
    x: Tensor<FlexAutodiff, 4>,
    gamma: Tensor<FlexAutodiff, 1>,
    offset: Tensor<FlexAutodiff, 2>,
    epsilon: f64,
) -> NormalizedBatch<FlexAutodiff> {
    if x.dtype() != DType::F32 {
        return ddpm_ops::relu_batch_norm(x, gamma, offset, epsilon);
    }
    let (shape, device) = (x.dims(), x.device());
    let layout = Layout::of(shape);
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let offset = offset.into_primitive().tensor();
    let x_values = values(&x.primitive);
    let gamma_values = values(&gamma.primitive).into_owned();
    let (normalization, variance) = Normalization::of(&x_values, gamma_values, epsilon, layout);
    let y = normalization.forward(&x_values, &values(&offset.primitive), layout);
    let mean = normalization.mean.clone();
    let step = NormStep {
        x: x.primitive.clone(),
        normalization,
        shape,
    };
    let parents = [x.node.clone(), gamma.node.clone(), offset.node.clone()];
    let y = flex(y, shape);
    let output = step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateless(y);
    let channels = TensorData::new::<f32, _>;
    NormalizedBatch {
        output: Tensor::from_primitive(TensorPrimitive::Float(output)),
        mean: Tensor::from_data(channels(mean, [layout.channels]), &device),
        variance: Tensor::from_data(channels(variance, [layout.channels]), &device),
    }
}

/// The backward step of [`relu_batch_norm`], whose parents are `x`, γ and the offset. Keeps the
/// (pre-ReLU) input and the per-channel constants.
#[derive(Debug)]
struct NormStep {
    x: FlexTensor,
    normalization: Normalization,
    shape: [usize; 4],
}

impl Backward<Flex, 3> for NormStep {
    type State = ();

    fn backward(self, ops: Ops<(), 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let layout = Layout::of(self.shape);
        let gradients = self
            .normalization
            .backward(&values(&self.x), &values(&dy), layout);
        let [x_node, gamma_node, offset_node] = ops.parents;
        let Layout {
            batch, channels, ..
        } = layout;
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, flex(gradients.x, self.shape));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, flex(gradients.gamma, [channels]));
        }
        if let Some(node) = offset_node {
            grads.register::<Flex>(node.id, flex(gradients.offset, [batch, channels]));
        }
    }
}

#[cfg(test)]
mod tests;
