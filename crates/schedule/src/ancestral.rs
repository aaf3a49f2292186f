//! DDPM ancestral sampling (Ho et al. 2020), the seed's reverse process.

use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::prediction::Scales;
use crate::{NoiseSchedule, PredictionTarget, Sampler};

/// The variance of each reverse step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceKind {
    /// The posterior variance beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (the seed;
    /// diffusers' `fixed_small`).
    #[default]
    FixedSmall,
    /// beta_t (Ho et al.'s CIFAR-10 choice; diffusers' `fixed_large`).
    FixedLarge,
}

impl std::str::FromStr for VarianceKind {
    type Err = String;

    /// `small` (the posterior's, the seed's) or `large` (β_t, Ho et al.'s).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Self::FixedSmall),
            "large" => Ok(Self::FixedLarge),
            other => Err(format!(
                "unknown variance '{other}' (expected small or large)"
            )),
        }
    }
}

/// Settings of the DDPM ancestral sampler. Defaults: the seed's posterior variance, with the
/// predicted x0 clipped to [-1, 1] (diffusers' `clip_sample`, on by default there too).
#[derive(Config, Debug, PartialEq)]
pub struct DdpmConfig {
    /// Variance of each reverse step.
    #[config(default = "VarianceKind::FixedSmall")]
    pub variance: VarianceKind,
    /// Clip the predicted x0 to [-1, 1] and step to the posterior mean of the clipped estimate.
    #[config(default = true)]
    pub clip_sample: bool,
}

impl DdpmConfig {
    /// The sampler for a model trained on `schedule` to predict `prediction`: all T steps.
    pub fn init(&self, schedule: &NoiseSchedule, prediction: PredictionTarget) -> DdpmSampler {
        DdpmSampler {
            schedule: schedule.clone(),
            timesteps: (0..schedule.num_timesteps()).rev().collect(),
            prediction,
            config: self.clone(),
        }
    }
}

/// Reverse steps x_t → x_{t-1} over a whole batch at once:
/// x_{t-1} = 1/sqrt(alpha_t) · (x_t − beta_t / sqrt(1 − alpha_bar_t) · ε̂) + σ_t z, with no noise
/// at t = 0. Model outputs of any [`PredictionTarget`] are turned into ε̂ first; with
/// `clip_sample` the mean is the posterior mean of the clipped x0 estimate instead (as diffusers'
/// `DDPMScheduler` computes it).
#[derive(Debug, Clone)]
pub struct DdpmSampler {
    schedule: NoiseSchedule,
    timesteps: Vec<usize>,
    prediction: PredictionTarget,
    config: DdpmConfig,
}

impl DdpmSampler {
    /// The settings it was built with.
    pub fn config(&self) -> &DdpmConfig {
        &self.config
    }
}

impl<B: Backend> Sampler<B> for DdpmSampler {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn is_stochastic(&self, t: usize) -> bool {
        t > 0
    }

    fn step_with_noise(
        &self,
        output: Tensor<B, 4>,
        t: usize,
        x_t: Tensor<B, 4>,
        noise: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 4> {
        let s = &self.schedule;
        let scales = Scales::of(s.alphas_cumprod[t]);
        // Each form needs one estimate only: the clipped x0, or the noise (the seed's form).
        let mean = if self.config.clip_sample {
            let x0 = scales.x0(self.prediction, x_t.clone(), output);
            x0.clamp(-1.0, 1.0) * s.posterior_mean_coef_x0[t] + x_t * s.posterior_mean_coef_xt[t]
        } else {
            let eps = scales.noise(self.prediction, x_t.clone(), output);
            let eps_coef = s.betas[t] / s.sqrt_one_minus_alphas_cumprod[t];
            (x_t - eps * eps_coef) * s.sqrt_recip_alphas[t]
        };
        let Some(z) = noise.filter(|_| t > 0) else {
            return mean;
        };
        let variance = match self.config.variance {
            VarianceKind::FixedSmall => s.posterior_variance[t],
            VarianceKind::FixedLarge => s.betas[t],
        };
        mean + z * variance.sqrt()
    }
}
