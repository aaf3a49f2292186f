//! Adam's step for burn-flex in one parallel pass over a parameter, registered with
//! `ddpm-trainer` (see [`ddpm_trainer::register_adam_step`]).
//!
//! burn's `Adam` runs about a dozen element-wise operations per parameter, each a pass over its
//! values, mostly on one thread on flex; for the seed's 62M parameters that was about a quarter of
//! a training step's CPU time. Here the value and both moments are updated in place, in chunks
//! spread over rayon's threads, with burn's arithmetic operation for operation (f32, same order,
//! no fused multiply-add), so the values are burn's to the bit.

use burn::optim::{AdaptiveMomentumState, LearningRate};
use burn::tensor::{Tensor, TensorPrimitive};
use burn_flex::FlexTensor;
use ddpm_trainer::{AdamConstants, AdamStepFn, register_adam_step};
use rayon::prelude::*;

use crate::backend::Flex;
use crate::flex_conv::values;

/// Values per rayon task: a 9.4M-value layer spreads over the threads, a bias stays one task.
const CHUNK: usize = 1 << 15;

/// Makes ddpm-trainer's Adam step flex's f32 parameters here, or by burn's `Adam` again.
pub fn register(enabled: bool) {
    let step: AdamStepFn<Flex> = step;
    register_adam_step::<Flex>(enabled.then_some(step));
}

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
fn step(
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
    use burn::backend::Autodiff;
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::{Distribution, Tensor};
    use ddpm_trainer::ThreadedAdam;

    use super::*;

    type B = Autodiff<Flex>;

    /// A layer with more weights than one chunk, so that the pass is split.
    fn linear() -> Linear<B> {
        let device = Default::default();
        let mut linear = LinearConfig::new(300, 200).init::<B>(&device);
        let random = |shape: [usize; 2]| Tensor::random(shape, Distribution::Default, &device);
        // Drawn now: a clone of a parameter not drawn yet would draw its own.
        linear.weight = Param::from_tensor(random([300, 200]) - 0.5);
        linear.bias = Some(Param::from_tensor(random([1, 200]).squeeze_dim(0)));
        linear
    }

    /// The weights and bias after three steps of `optim` under a loss on the batch `x`.
    fn train<O: Optimizer<Linear<B>, B>>(
        mut linear: Linear<B>,
        optim: &mut O,
        x: &Tensor<B, 2>,
    ) -> Vec<f32> {
        for _ in 0..3 {
            let loss = linear.forward(x.clone()).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &linear);
            linear = optim.step(2e-3, linear, grads);
        }
        let [weight, bias] = [linear.weight.val(), linear.bias.unwrap().val().unsqueeze()];
        let values = |t: Tensor<B, 2>| t.into_data().to_vec::<f32>().unwrap();
        [values(weight), values(bias)].concat()
    }

    #[test]
    fn steps_burns_adam_to_the_bit() {
        let decays = [None, Some(WeightDecayConfig::new(1e-2))];
        for decay in decays {
            let config = AdamConfig::new().with_weight_decay(decay);
            let start = linear();
            let x = Tensor::random([4, 300], Distribution::Default, &Default::default());
            // The clones share buffers: updating them in place copies them first.
            let burns = train(start.clone(), &mut config.init(), &x);
            register(true);
            let ours = train(start, &mut ThreadedAdam::new(&config, true), &x);
            assert_eq!(ours.len(), 300 * 200 + 200);
            let differ = ours.iter().zip(&burns).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "values that differ from burn's");
        }
    }
}
