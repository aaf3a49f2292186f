//! The paper U-Net's dropout for training on burn-flex: one parallel pass each way, the mask a
//! hash of each value's index and a seed drawn from the backend's random state.
//!
//! burn's `Dropout` draws a Bernoulli tensor value by value on one thread (most of its cost), then
//! multiplies twice, and its backward pass multiplies twice more. Here a value `i` is kept when
//! the top 24 bits of `hash(i, seed)` fall below `(1 − p)·2²⁴`; the backward pass recomputes the
//! same mask from the seed instead of storing it. The draws differ from burn's, but like burn's
//! they follow the backend's seed, so a run reseeded alike drops alike.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::{DType, Distribution, Tensor, TensorPrimitive};

use crate::par_rows::filled_in_parallel;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// Which values a draw keeps, and the scale of the kept ones.
#[derive(Debug, Clone, Copy)]
struct Mask {
    seeds: [u32; 2],
    /// Kept when the hash's top 24 bits are below this.
    threshold: u32,
    /// `1/(1 − p)`.
    scale: f32,
}

impl Mask {
    /// A mask for probability `p`, seeded from flex's random state.
    fn draw(probability: f64) -> Self {
        let draws = Tensor::<Flex, 1>::random([2], Distribution::Default, &Default::default());
        let draws = draws.into_data().to_vec::<f32>().expect("f32 draws");
        let keep = 1.0 - probability;
        Self {
            seeds: [0, 1].map(|i| (draws[i] * 16_777_216.0) as u32),
            threshold: (keep * 16_777_216.0).round() as u32,
            scale: (1.0 / keep) as f32,
        }
    }

    /// `v·scale` where value `index` is kept, else 0.
    fn apply(&self, index: usize, v: f32) -> f32 {
        let hash = mix(mix(index as u32 ^ self.seeds[0]) ^ self.seeds[1]);
        if hash >> 8 < self.threshold {
            v * self.scale
        } else {
            0.0
        }
    }

    /// The mask applied to every value of `x`.
    fn applied(&self, x: &[f32]) -> Vec<f32> {
        filled_in_parallel(x.len(), CHUNK, |chunk, out| {
            let first = chunk * CHUNK;
            let x = &x[first..][..out.len()];
            for (i, (out, &x)) in out.iter_mut().zip(x).enumerate() {
                *out = self.apply(first + i, x);
            }
        })
    }
}

/// A 32-bit integer hash with good avalanche (the "lowbias32" finaliser).
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Training: dropout with probability `p`, recorded for the backward pass (f32; other types,
/// and `p` outside `(0, 1)`, by burn's `Dropout`).
pub(crate) fn dropout_tracked(
    x: Tensor<FlexAutodiff, 4>,
    probability: f64,
) -> Tensor<FlexAutodiff, 4> {
    if x.dtype() != DType::F32 || !(probability > 0.0 && probability < 1.0) {
        return ddpm_ops::dropout(x, probability);
    }
    let shape = x.dims();
    let mask = Mask::draw(probability);
    let x = x.into_primitive().tensor();
    let y = mask.applied(&values(&x.primitive));
    let output = DropoutStep { mask, shape }
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateless(flex(y, shape));
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The backward step of [`dropout_tracked`]: the output's gradient through the same mask.
#[derive(Debug)]
struct DropoutStep {
    mask: Mask,
    shape: [usize; 4],
}

impl Backward<Flex, 1> for DropoutStep {
    type State = ();

    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let [x_node] = ops.parents;
        if let Some(node) = x_node {
            let dx = self.mask.applied(&values(&dy));
            grads.register::<Flex>(node.id, flex(dx, self.shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::backend::Backend;

    use super::*;
    use crate::testing::normal;

    /// Kept values scaled by `1/(1 − p)`, the rest zero, about `p` of them dropped, and the
    /// gradient through the same mask.
    #[test]
    fn drops_about_p_and_scales_the_rest() {
        let shape = [4, 8, 64, 64];
        let x = normal::<FlexAutodiff, 4>(shape).require_grad();
        let y = dropout_tracked(x.clone(), 0.1);
        let weights = normal::<FlexAutodiff, 4>(shape);
        let grads = (y.clone() * weights.clone()).sum().backward();
        let dx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let [x, y, weights] =
            [x.inner(), y.inner(), weights.inner()].map(|t| t.into_data().to_vec::<f32>().unwrap());
        let mut dropped = 0;
        for i in 0..x.len() {
            if y[i] == 0.0 {
                dropped += 1;
                assert_eq!(dx[i], 0.0);
            } else {
                assert_eq!(y[i], x[i] * (1.0 / 0.9f64) as f32);
                assert_eq!(dx[i], weights[i] * (1.0 / 0.9f64) as f32);
            }
        }
        // 131,072 draws: the share dropped is within 5 standard deviations (0.4%) of 10%.
        let share = dropped as f64 / x.len() as f64;
        assert!((share - 0.1).abs() < 0.004, "dropped {share}");
    }

    /// The draws follow the backend's seed.
    #[test]
    fn the_same_seed_drops_the_same_values() {
        let x = normal::<FlexAutodiff, 4>([2, 3, 16, 16]);
        let draw = || {
            Flex::seed(&Default::default(), 7);
            dropout_tracked(x.clone(), 0.5).into_data()
        };
        assert_eq!(draw(), draw());
    }
}
