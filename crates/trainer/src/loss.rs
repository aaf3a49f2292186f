//! The training losses.

use burn::tensor::{Tensor, backend::Backend};

use crate::LossKind;

/// Mean loss between `output` and `target` over all elements.
pub fn loss<B: Backend, const D: usize>(
    kind: LossKind,
    output: Tensor<B, D>,
    target: Tensor<B, D>,
) -> Tensor<B, 1> {
    elementwise(kind, output - target).mean()
}

/// The mean over samples of each sample's mean loss times its weight (`weights: [N]`).
pub fn weighted_loss<B: Backend, const D: usize>(
    kind: LossKind,
    output: Tensor<B, D>,
    target: Tensor<B, D>,
    weights: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let n = output.dims()[0];
    let per_sample = elementwise(kind, output - target)
        .reshape([n as i32, -1])
        .mean_dim(1)
        .reshape([n]);
    (per_sample * weights).mean()
}

/// The loss of each element of `diff = output − target`.
fn elementwise<B: Backend, const D: usize>(kind: LossKind, diff: Tensor<B, D>) -> Tensor<B, D> {
    match kind {
        LossKind::L1 => diff.abs(),
        LossKind::L2 => diff.powi_scalar(2),
        LossKind::Huber { delta } => {
            // 0.5 x² for |x| ≤ δ, δ(|x| − 0.5 δ) beyond: written as min/max so it stays smooth.
            let abs = diff.abs();
            let quadratic = abs.clone().clamp_max(delta);
            let linear = abs - quadratic.clone();
            quadratic.powi_scalar(2).mul_scalar(0.5) + linear.mul_scalar(delta)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData};
    use burn_ndarray::NdArray;

    use super::*;

    type B = NdArray<f32>;

    #[test]
    fn weighted_loss_weighs_each_samples_mean() {
        let device = Default::default();
        let output = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1.0f32, 3.0, 0.0, 0.0], [2, 2]),
            &device,
        );
        let target = Tensor::<B, 2>::zeros([2, 2], &device);
        let weights = Tensor::<B, 1>::from_data(TensorData::new(vec![2.0f32, 7.0], [2]), &device);
        // Sample 0: mean of (1, 9) = 5, weighted 10; sample 1: 0. Mean over samples: 5.
        let weighted = weighted_loss(LossKind::L2, output.clone(), target.clone(), weights);
        assert_eq!(weighted.into_scalar(), 5.0);
        let ones = Tensor::<B, 1>::ones([2], &device);
        let uniform = weighted_loss(LossKind::L1, output.clone(), target.clone(), ones);
        assert_eq!(
            uniform.into_scalar(),
            loss(LossKind::L1, output, target).into_scalar()
        );
    }
}
