//! DDIM sampling (Song et al. 2021): few deterministic (or partly stochastic) steps.

use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::prediction::Scales;
use crate::{NoiseSchedule, PredictionTarget, Sampler, ScheduleError};

/// How the inference timesteps are spread over `0..T`, with diffusers' names and formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `round(linspace(0, T - 1, n))`: first and last training step included.
    Linspace,
    /// `i · (T / n) + steps_offset`: starts at 0, never reaches T - 1 (diffusers' DDIM default).
    #[default]
    Leading,
    /// `round(T - i · T / n) - 1`: ends at T - 1 (Lin et al. 2024 recommend it for few steps).
    Trailing,
}

impl std::str::FromStr for TimestepSpacing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linspace" => Ok(Self::Linspace),
            "leading" => Ok(Self::Leading),
            "trailing" => Ok(Self::Trailing),
            other => Err(format!(
                "unknown timestep spacing '{other}' (expected linspace, leading or trailing)"
            )),
        }
    }
}

/// Settings of the DDIM sampler; field names and defaults follow diffusers' `DDIMScheduler`.
#[derive(Config, Debug, PartialEq)]
pub struct DdimConfig {
    /// Number of denoising steps (at most T).
    #[config(default = 50)]
    pub num_inference_steps: usize,
    /// Share of the DDPM posterior noise added each step: 0 is deterministic, 1 is DDPM-like.
    #[config(default = 0.0)]
    pub eta: f64,
    /// How the steps are spread over the training timesteps.
    #[config(default = "TimestepSpacing::Leading")]
    pub timestep_spacing: TimestepSpacing,
    /// Step last to alpha_bar = 1 (a clean image) rather than to alpha_bar_0.
    #[config(default = true)]
    pub set_alpha_to_one: bool,
    /// Added to every timestep of the `leading` spacing.
    #[config(default = 0)]
    pub steps_offset: usize,
    /// Clip the predicted x0 to [-1, 1].
    #[config(default = true)]
    pub clip_sample: bool,
    /// With `clip_sample`, also recompute the noise estimate from the clipped x0, so the two
    /// agree (diffusers' `use_clipped_model_output`; off there by default, leaving ε unclipped).
    #[config(default = false)]
    pub use_clipped_model_output: bool,
}

impl DdimConfig {
    /// The sampler for a model trained on `schedule` to predict `prediction`, its timesteps set.
    pub fn init(
        &self,
        schedule: &NoiseSchedule,
        prediction: PredictionTarget,
    ) -> Result<DdimSampler, ScheduleError> {
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(ScheduleError::OutOfRange {
                name: "eta",
                range: "[0, 1]",
                value: self.eta,
            });
        }
        let mut sampler = DdimSampler {
            schedule: schedule.clone(),
            prediction,
            config: self.clone(),
            timesteps: Vec::new(),
        };
        sampler.set_timesteps(self.num_inference_steps)?;
        Ok(sampler)
    }
}

/// DDIM steps from x_t to the previous inference timestep:
/// x_prev = sqrt(ᾱ_prev)·x̂0 + sqrt(1 − ᾱ_prev − σ²)·ε̂ + σ z, σ = eta·sqrt((1 − ᾱ_prev)/(1 − ᾱ_t)·
/// (1 − ᾱ_t/ᾱ_prev)). As in diffusers, the previous timestep is `t − T / n` (integer division)
/// whatever the spacing.
#[derive(Debug, Clone)]
pub struct DdimSampler {
    schedule: NoiseSchedule,
    prediction: PredictionTarget,
    config: DdimConfig,
    timesteps: Vec<usize>,
}

impl DdimSampler {
    /// The settings it was built with (`num_inference_steps` as last set).
    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    /// Chooses `n` inference timesteps with the configured spacing (diffusers' `set_timesteps`).
    pub fn set_timesteps(&mut self, n: usize) -> Result<(), ScheduleError> {
        let total = self.schedule.num_timesteps();
        if n == 0 || n > total {
            return Err(ScheduleError::InferenceSteps { steps: n, total });
        }
        self.timesteps = spaced_timesteps(
            self.config.timestep_spacing,
            total,
            n,
            self.config.steps_offset,
        );
        if let Some(&bad) = self.timesteps.iter().find(|&&t| t >= total) {
            return Err(ScheduleError::TimestepOutOfRange { t: bad, total });
        }
        self.config.num_inference_steps = n;
        Ok(())
    }

    /// ᾱ of the timestep the step from `t` lands on.
    fn alpha_bar_prev(&self, t: usize) -> f64 {
        let stride = self.schedule.num_timesteps() / self.config.num_inference_steps;
        match t.checked_sub(stride) {
            Some(prev) => self.schedule.alphas_cumprod[prev],
            None if self.config.set_alpha_to_one => 1.0,
            None => self.schedule.alphas_cumprod[0],
        }
    }

    /// The standard deviation σ of the step from `t`.
    fn sigma(&self, t: usize) -> f64 {
        let alpha_bar = self.schedule.alphas_cumprod[t];
        let alpha_bar_prev = self.alpha_bar_prev(t);
        let variance =
            (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev);
        self.config.eta * variance.max(0.0).sqrt()
    }
}

impl<B: Backend> Sampler<B> for DdimSampler {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn is_stochastic(&self, t: usize) -> bool {
        self.sigma(t) > 0.0
    }

    fn step_with_noise(
        &self,
        output: Tensor<B, 4>,
        t: usize,
        x_t: Tensor<B, 4>,
        noise: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 4> {
        let alpha_bar_prev = self.alpha_bar_prev(t);
        let sigma = self.sigma(t);
        let scales = Scales::of(self.schedule.alphas_cumprod[t]);
        let mut x0 = scales.x0(self.prediction, x_t.clone(), output.clone());
        let mut eps = scales.noise(self.prediction, x_t.clone(), output);
        if self.config.clip_sample {
            x0 = x0.clamp(-1.0, 1.0);
            if self.config.use_clipped_model_output {
                eps = scales.noise(PredictionTarget::Sample, x_t, x0.clone());
            }
        }
        let direction = (1.0 - alpha_bar_prev - sigma * sigma).max(0.0).sqrt();
        let prev = x0 * alpha_bar_prev.sqrt() + eps * direction;
        match noise {
            Some(z) if sigma > 0.0 => prev + z * sigma,
            _ => prev,
        }
    }
}

/// The `n` timesteps of a spacing over `0..total`, noisiest first (diffusers' `set_timesteps`,
/// including numpy's round-half-to-even).
fn spaced_timesteps(spacing: TimestepSpacing, total: usize, n: usize, offset: usize) -> Vec<usize> {
    let mut steps: Vec<usize> = match spacing {
        TimestepSpacing::Linspace => {
            let last = (total - 1) as f64;
            let delta = if n > 1 { last / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .map(|i| {
                    let value = if i + 1 == n && n > 1 {
                        last
                    } else {
                        i as f64 * delta
                    };
                    value.round_ties_even() as usize
                })
                .collect()
        }
        TimestepSpacing::Leading => (0..n).map(|i| i * (total / n) + offset).collect(),
        TimestepSpacing::Trailing => {
            let ratio = total as f64 / n as f64;
            (0..n)
                .map(|i| (total as f64 - i as f64 * ratio).round_ties_even() as usize - 1)
                .collect()
        }
    };
    steps.sort_unstable_by(|a, b| b.cmp(a));
    steps
}
