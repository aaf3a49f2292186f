//! Recording a two-operand kernel step for burn's autodiff.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::tensor::ops::FloatTensor;

use crate::device::Primitive;
use crate::{Gpu, GpuAutodiff};

/// `output`, computed from `a` and `b` by `step`, as a node of the graph whose backward pass is
/// `step`'s, with both operands kept for it.
pub(crate) fn record<S>(
    step: S,
    a: &FloatTensor<GpuAutodiff>,
    b: &FloatTensor<GpuAutodiff>,
    output: Primitive,
) -> FloatTensor<GpuAutodiff>
where
    S: Backward<Gpu, 2, State = (NodeId, NodeId)>,
{
    let parents = [a.node.clone(), b.node.clone()];
    match step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(a), prep.checkpoint(b));
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
