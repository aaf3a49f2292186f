use burn::tensor::{Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::ForwardProcess;

/// What a noise predictor is trained to output. Serialised with diffusers' `prediction_type`
/// names, so configs read the same on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PredictionTarget {
    /// The noise that was added (Ho et al. 2020; the seed).
    #[default]
    #[serde(rename = "epsilon")]
    Noise,
    /// The clean sample x_0.
    #[serde(rename = "sample")]
    Sample,
    /// The velocity v = sqrt(alpha_bar)·noise - sqrt(1 - alpha_bar)·x_0.
    #[serde(rename = "v_prediction")]
    Velocity,
}

impl<B: Backend> ForwardProcess<B> {
    /// The training target for `x0` noised with `noise` at `t`.
    pub fn target<const D: usize>(
        &self,
        kind: PredictionTarget,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        match kind {
            PredictionTarget::Noise => noise,
            PredictionTarget::Sample => x0,
            PredictionTarget::Velocity => self.velocity(x0, noise, t),
        }
    }

    /// Turns a model output of the given kind at `(x_t, t)` into `(x0, noise)` estimates, the
    /// form every sampler step works from.
    pub fn split_prediction<const D: usize>(
        &self,
        kind: PredictionTarget,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        match kind {
            PredictionTarget::Noise => (self.x0_from_noise(x_t, output.clone(), t), output),
            PredictionTarget::Sample => (output.clone(), self.noise_from_x0(x_t, output, t)),
            PredictionTarget::Velocity => (
                self.x0_from_velocity(x_t.clone(), output.clone(), t.clone()),
                self.noise_from_velocity(x_t, output, t),
            ),
        }
    }
}
