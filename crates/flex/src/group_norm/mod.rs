//! The paper U-Net's GroupNorm (+ SiLU) for burn-flex: one parallel pass of statistics and one
//! of output forward, one pass of row sums and one multiply-add per value backward (training on
//! flex's autodiff decorator, inference on flex).
//!
//! burn computes the pair as a dozen operations forward (reshapes, sums, centring, squares,
//! broadcast products, the SiLU's exponentials) and about twice as many backward, several of them
//! through burn-flex's strided iterator on one thread. See [`kernel`] for the arithmetic.

mod kernel;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;
use ddpm_ops::GroupNormOptions;

use self::kernel::{GroupStatistics, Grouping};
use crate::par_rows::Layout;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// The grouping of `shape` into `groups`, refusing groups that do not divide the channels.
fn grouping(shape: [usize; 4], groups: usize) -> Grouping {
    let channels = shape[1];
    assert!(
        groups > 0 && channels.is_multiple_of(groups),
        "GroupNorm: {groups} groups do not divide {channels} channels"
    );
    Grouping {
        layout: Layout::of(shape),
        groups,
    }
}

/// Inference: GroupNorm (+ SiLU) on flex (f32; other types by burn's operations).
pub(crate) fn group_norm(
    x: Tensor<Flex, 4>,
    gamma: Tensor<Flex, 1>,
    beta: Tensor<Flex, 1>,
    options: GroupNormOptions,
) -> Tensor<Flex, 4> {
    if x.dtype() != DType::F32 {
        return ddpm_ops::group_norm(x, gamma, beta, options);
    }
    let shape = x.dims();
    let grouping = grouping(shape, options.groups);
    let x = x.into_primitive().tensor();
    let [gamma, beta] = [gamma, beta].map(|t| t.into_primitive().tensor());
    let x = values(&x);
    let statistics = GroupStatistics::of(&x, &values(&gamma), &values(&beta), options, grouping);
    let y = statistics.forward(&x, grouping);
    Tensor::from_primitive(TensorPrimitive::Float(flex(y, shape)))
}

/// Training: GroupNorm (+ SiLU), recorded for the backward pass (f32; other types by burn's
/// operations).
pub(crate) fn group_norm_tracked(
    x: Tensor<FlexAutodiff, 4>,
    gamma: Tensor<FlexAutodiff, 1>,
    beta: Tensor<FlexAutodiff, 1>,
    options: GroupNormOptions,
) -> Tensor<FlexAutodiff, 4> {
    if x.dtype() != DType::F32 {
        return ddpm_ops::group_norm(x, gamma, beta, options);
    }
    let shape = x.dims();
    let grouping = grouping(shape, options.groups);
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let x_values = values(&x.primitive);
    let statistics = GroupStatistics::of(
        &x_values,
        &values(&gamma.primitive),
        &values(&beta.primitive),
        options,
        grouping,
    );
    let y = flex(statistics.forward(&x_values, grouping), shape);
    let step = GroupNormStep {
        x: x.primitive.clone(),
        statistics,
        grouping,
        shape,
    };
    let parents = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let output = step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateless(y);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The backward step of [`group_norm_tracked`], whose parents are `x`, γ and β. Keeps the input
/// and the per-group statistics.
#[derive(Debug)]
struct GroupNormStep {
    x: FlexTensor,
    statistics: GroupStatistics,
    grouping: Grouping,
    shape: [usize; 4],
}

impl Backward<Flex, 3> for GroupNormStep {
    type State = ();

    fn backward(self, ops: Ops<(), 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let gradients = self
            .statistics
            .backward(&values(&self.x), &values(&dy), self.grouping);
        let [x_node, gamma_node, beta_node] = ops.parents;
        let channels = [self.shape[1]];
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, flex(gradients.x, self.shape));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, flex(gradients.gamma, channels));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, flex(gradients.beta, channels));
        }
    }
}

#[cfg(test)]
mod tests;
