use std::ops::{Div, Mul};

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

/// sqrt(alpha_bar) and sqrt(1 - alpha_bar) of a noise level, and the conversions between x_0, the
/// noise and v written once over them. `S` is a per-sample tensor broadcasting over a batch (the
/// forward process, each sample at its own t) or a plain `f64` (a sampler step, whole batch at one
/// t, no gather on the device).
#[derive(Debug, Clone)]
pub(crate) struct Scales<S> {
    /// sqrt(alpha_bar): the signal scale of x_t.
    pub signal: S,
    /// sqrt(1 - alpha_bar): the noise scale of x_t.
    pub noise: S,
}

impl Scales<f64> {
    /// The scales of a noise level with cumulative alpha `alpha_bar`.
    pub fn of(alpha_bar: f64) -> Self {
        Self {
            signal: alpha_bar.sqrt(),
            noise: (1.0 - alpha_bar).sqrt(),
        }
    }
}

impl<S: Clone> Scales<S> {
    /// x_0 implied by x_t and a model output of kind `kind`.
    pub fn x0<B: Backend, const D: usize>(
        &self,
        kind: PredictionTarget,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
    ) -> Tensor<B, D>
    where
        Tensor<B, D>: Mul<S, Output = Tensor<B, D>> + Div<S, Output = Tensor<B, D>>,
    {
        match kind {
            PredictionTarget::Noise => (x_t - output * self.noise.clone()) / self.signal.clone(),
            PredictionTarget::Sample => output,
            PredictionTarget::Velocity => x_t * self.signal.clone() - output * self.noise.clone(),
        }
    }

    /// The noise implied by x_t and a model output of kind `kind`.
    pub fn noise<B: Backend, const D: usize>(
        &self,
        kind: PredictionTarget,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
    ) -> Tensor<B, D>
    where
        Tensor<B, D>: Mul<S, Output = Tensor<B, D>> + Div<S, Output = Tensor<B, D>>,
    {
        match kind {
            PredictionTarget::Noise => output,
            PredictionTarget::Sample => (x_t - output * self.signal.clone()) / self.noise.clone(),
            PredictionTarget::Velocity => x_t * self.noise.clone() + output * self.signal.clone(),
        }
    }

    /// v = sqrt(alpha_bar)·noise - sqrt(1 - alpha_bar)·x_0 (Salimans & Ho 2022).
    pub fn velocity<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
    ) -> Tensor<B, D>
    where
        Tensor<B, D>: Mul<S, Output = Tensor<B, D>>,
    {
        noise * self.signal.clone() - x0 * self.noise.clone()
    }
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

    /// Turns a model output of the given kind at `(x_t, t)` into `(x0, noise)` estimates.
    pub fn split_prediction<const D: usize>(
        &self,
        kind: PredictionTarget,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        let scales = self.scales::<D>(t);
        (
            scales.x0(kind, x_t.clone(), output.clone()),
            scales.noise(kind, x_t, output),
        )
    }
}
