//! How Adam steps a backend's parameters.
//!
//! burn's `Adam` updates a parameter through about a dozen element-wise operations (moments,
//! bias corrections, square root, division, update), each a pass over all of its values. A kernel
//! crate can offer a step that does the same arithmetic in one pass ([`AdamStepFn`]); it must
//! compute what burn computes, operation for operation in f32, so that both give the same values
//! to the bit, and checkpoints written with either continue with the other.

use burn::optim::{AdamConfig, AdaptiveMomentumState, LearningRate};
use burn::tensor::{Tensor, backend::Backend};
use serde::Deserialize;

/// Adam's constants, as burn's [`AdamConfig`] holds them (`amsgrad` off).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct AdamConstants {
    /// The first moment's decay.
    pub beta_1: f32,
    /// The second moment's decay.
    pub beta_2: f32,
    /// Added to the root of the second moment (burn scales it by the bias correction).
    pub epsilon: f32,
    /// The L2 penalty added to the gradient (`penalty · value`), if any.
    #[serde(deserialize_with = "penalty")]
    pub weight_decay: Option<f32>,
}

/// burn's `WeightDecayConfig` is `{ "penalty": f32 }`.
fn penalty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<f32>, D::Error> {
    #[derive(Deserialize)]
    struct WeightDecay {
        penalty: f32,
    }
    Ok(Option::<WeightDecay>::deserialize(deserializer)?.map(|decay| decay.penalty))
}

impl AdamConstants {
    /// The constants of `config`, or `None` where a one-pass step does not apply (amsgrad).
    ///
    /// burn's config keeps its fields private; its serialised form (burn saves configs as JSON)
    /// names them.
    pub fn of(config: &AdamConfig) -> Option<Self> {
        let json = serde_json::to_value(config).ok()?;
        let amsgrad = json.get("amsgrad").and_then(|value| value.as_bool());
        match amsgrad {
            Some(false) => serde_json::from_value(json).ok(),
            _ => None,
        }
    }
}

/// One Adam step of one flattened f32 parameter: `(constants, learning rate, value, gradient,
/// state)` → the new value and state (`time` one more; no `max_moment_2`). Must equal burn's
/// `Adam` step to the bit.
pub type AdamStepFn<B> = fn(
    &AdamConstants,
    LearningRate,
    Tensor<B, 1>,
    Tensor<B, 1>,
    Option<AdaptiveMomentumState<B, 1>>,
) -> (Tensor<B, 1>, AdaptiveMomentumState<B, 1>);

/// How Adam steps the parameters of a backend: burn's operations by default, one parameter after
/// another (a GPU backend only queues kernels).
pub struct AdamOps<B: Backend> {
    /// A one-pass step for f32 parameters instead of burn's operations.
    pub step: Option<AdamStepFn<B>>,
    /// Step the parameters concurrently, on rayon's pool: for CPU backends, whose element-wise
    /// operations on small tensors run on one thread each.
    pub concurrent: bool,
}

impl<B: Backend> Default for AdamOps<B> {
    fn default() -> Self {
        Self {
            step: None,
            concurrent: false,
        }
    }
}

impl<B: Backend> Clone for AdamOps<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for AdamOps<B> {}

impl<B: Backend> std::fmt::Debug for AdamOps<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamOps")
            .field("one_pass_step", &self.step.is_some())
            .field("concurrent", &self.concurrent)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::decay::WeightDecayConfig;

    use super::*;

    #[test]
    fn constants_are_read_from_burns_config() {
        let config = AdamConfig::new()
            .with_beta_1(0.8)
            .with_epsilon(1e-8)
            .with_weight_decay(Some(WeightDecayConfig::new(0.01)));
        let expected = AdamConstants {
            beta_1: 0.8,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: Some(0.01),
        };
        assert_eq!(AdamConstants::of(&config), Some(expected));
        let plain = AdamConstants::of(&AdamConfig::new()).unwrap();
        assert_eq!((plain.epsilon, plain.weight_decay), (1e-5, None));
        assert_eq!(
            AdamConstants::of(&AdamConfig::new().with_amsgrad(true)),
            None
        );
    }
}
