//! The training losses.

use burn::tensor::{Tensor, backend::Backend};

use crate::LossKind;

/// Mean loss between `output` and `target` over all elements.
pub fn loss<B: Backend, const D: usize>(
    kind: LossKind,
    output: Tensor<B, D>,
    target: Tensor<B, D>,
) -> Tensor<B, 1> {
    let diff = output - target;
    match kind {
        LossKind::L1 => diff.abs().mean(),
        LossKind::L2 => diff.powi_scalar(2).mean(),
        LossKind::Huber { delta } => {
            // 0.5 x² for |x| ≤ δ, δ(|x| − 0.5 δ) beyond: written as min/max so it stays smooth.
            let abs = diff.abs();
            let quadratic = abs.clone().clamp_max(delta);
            let linear = abs - quadratic.clone();
            (quadratic.powi_scalar(2).mul_scalar(0.5) + linear.mul_scalar(delta)).mean()
        }
    }
}
