//! Adam's step for burn-flex in one parallel pass over a parameter (the table's
//! [`AdamOps::step`](ddpm_ops::AdamOps::step)).
//!
//! burn's `Adam` runs about a dozen element-wise operations per parameter, each a pass over its
//! values, mostly on one thread on flex; for the seed's 62M parameters that was about a quarter of
//! a training step's CPU time. Here the value and both moments are updated in place, in chunks
//! spread over rayon's threads, with burn's arithmetic operation for operation (f32, same order,
//! no fused multiply-add), so the values are burn's to the bit.

use burn::optim::{AdaptiveMomentumState, LearningRate};
use burn::tensor::{Tensor, TensorPrimitive};
use burn_flex::FlexTensor;
use ddpm_ops::AdamConstants;
use rayon::prelude::*;

use crate::tensor::{Flex, values};

/// Values per rayon task: a 9.4M-value layer spreads over the threads, a bias stays one task.
const CHUNK: usize = 1 << 15;

/// `tensor` as a flex tensor whose buffer holds exactly its values in order, owned (copied if
/// shared or a view), so that it can be updated in place.
fn writable(tensor: Tensor<Flex, 1>) -> FlexTensor {
    let mut tensor = tensor.into_primitive().tensor().to_contiguous();
    // Copies the buffer only if another tensor shares it.
    tensor.storage_mut::<f32>();
    tensor
}

/// The step's constants, as burn computes them (f32).
#[derive(Clone, Copy)]
struct Coefficients {
    beta_1: f32,
    beta_2: f32,
    keep_1: f32,
    keep_2: f32,
    /// The bias corrections, folded as burn folds them.
    factor: f32,
    epsilon: f32,
    penalty: f32,
    lr: f32,
}

/// Per value: burn's `Adam::step` (moments, bias correction, update), in its order of operations.
pub(crate) fn step(
    constants: &AdamConstants,
    lr: LearningRate,
    value: Tensor<Flex, 1>,
    grad: Tensor<Flex, 1>,
    state: Option<AdaptiveMomentumState<Flex, 1>>,
) -> (Tensor<Flex, 1>, AdaptiveMomentumState<Flex, 1>) {
    let AdamConstants {
        beta_1,
        beta_2,
        epsilon,
        weight_decay,
    } = *constants;
    let time = state.as_ref().map_or(1, |state| state.time + 1);
    let bias_correction_2_sqrt = (1.0 - beta_2.powi(time as i32)).sqrt();
    let k = Coefficients {
        beta_1,
        beta_2,
        keep_1: 1.0 - beta_1,
        keep_2: 1.0 - beta_2,
        factor: bias_correction_2_sqrt / (1.0 - beta_1.powi(time as i32)),
        epsilon: epsilon * bias_correction_2_sqrt,
        penalty: weight_decay.unwrap_or(0.0),
        lr: lr as f32,
    };
    let update = match (weight_decay.is_some(), state.is_some()) {
        (false, true) => update::<false, false>,
        (false, false) => update::<false, true>,
        (true, true) => update::<true, false>,
        (true, false) => update::<true, true>,
    };

    let grad = grad.into_primitive().tensor();
    let grad = values(&grad);
    let mut value = writable(value);
    let (mut moment_1, mut moment_2) = match state {
        Some(state) => (writable(state.moment_1), writable(state.moment_2)),
        None => {
            let zeros = || FlexTensor::zeros(value.layout().shape().clone(), value.dtype());
            (zeros(), zeros())
        }
    };
    value
        .storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .zip(moment_1.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(moment_2.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((value, moment_1), moment_2), grad)| {
            update(&k, value, moment_1, moment_2, grad)
        });
    let tensor = |flex: FlexTensor| Tensor::from_primitive(TensorPrimitive::Float(flex));
    let momentum = AdaptiveMomentumState::new(time, tensor(moment_1), tensor(moment_2));
    (tensor(value), momentum)
}

/// One chunk of the step: with the L2 penalty if `DECAY`, from zero moments if `FIRST`. The
/// cases are instances of their own so that each loop is straight-line code, which vectorises.
#[inline(never)]
fn update<const DECAY: bool, const FIRST: bool>(
    k: &Coefficients,
    value: &mut [f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    grad: &[f32],
) {
    let each = value.iter_mut().zip(moment_1).zip(moment_2).zip(grad);
    for (((value, m), v), &grad) in each {
        let grad = if DECAY {
            *value * k.penalty + grad
        } else {
            grad
        };
        if FIRST {
            *m = grad * k.keep_1;
            *v = grad * grad * k.keep_2;
        } else {
            *m = *m * k.beta_1 + grad * k.keep_1;
            *v = *v * k.beta_2 + grad * grad * k.keep_2;
        }
        let update = *m * k.factor / (v.sqrt() + k.epsilon);
        *value -= update * k.lr;
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::Linear;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::{AdamConfig, SimpleOptimizer};
    use burn::tensor::Distribution;

    use super::*;
    use crate::tensor::FlexAutodiff;

    /// Three steps of one parameter larger than a chunk (so that the pass is split), by burn's
    /// `Adam` and by ours: the values and both moments agree to the bit.
    #[test]
    fn steps_burns_adam_to_the_bit() {
        let device = Default::default();
        let random = |count: usize| {
            Tensor::<Flex, 1>::random([count], Distribution::Normal(0.0, 1.0), &device)
        };
        for decay in [None, Some(WeightDecayConfig::new(1e-2))] {
            let config = AdamConfig::new().with_weight_decay(decay.clone());
            let adam = config.init::<FlexAutodiff, Linear<FlexAutodiff>>();
            let adam = adam.optim().clone();
            let constants = AdamConstants::of(&config).expect("plain Adam");
            let start = random(300 * 200 + 7);
            let (mut burns, mut ours) = (start.clone(), start);
            let (mut burn_state, mut our_state) = (None, None);
            for _ in 0..3 {
                let grad = random(300 * 200 + 7);
                let (value, state) =
                    SimpleOptimizer::step(&adam, 2e-3, burns, grad.clone(), burn_state);
                (burns, burn_state) = (value, state);
                let (value, state) = step(&constants, 2e-3, ours, grad, our_state);
                (ours, our_state) = (value, Some(state));
            }
            let bits = |t: Tensor<Flex, 1>| t.into_data().to_vec::<f32>().unwrap();
            assert_eq!(bits(ours), bits(burns), "values, decay {decay:?}");
            let (ours, burns) = (our_state.unwrap(), burn_state.unwrap().momentum);
            assert_eq!(ours.time, burns.time);
            assert_eq!(bits(ours.moment_1), bits(burns.moment_1));
            assert_eq!(bits(ours.moment_2), bits(burns.moment_2));
        }
    }
}
