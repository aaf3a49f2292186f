//! DDPM ancestral sampling (Ho et al. 2020), the seed's reverse process.

use burn::tensor::{Distribution, Int, Tensor, backend::Backend};

use crate::{ForwardProcess, NoiseSchedule, PredictionTarget};

/// The variance of each reverse step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VarianceKind {
    /// The posterior variance beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (the seed).
    #[default]
    FixedSmall,
    /// beta_t (Ho et al.'s CIFAR-10 choice).
    FixedLarge,
}

/// Reverse steps x_t → x_{t-1} over a whole batch at once:
/// x_{t-1} = 1/sqrt(alpha_t) · (x_t − beta_t / sqrt(1 − alpha_bar_t) · ε̂) + σ_t z, with no noise
/// at t = 0. Model outputs of any [`PredictionTarget`] are turned into ε̂ first; with `clip_x0`
/// the mean is the posterior mean of the clipped x0 estimate instead.
#[derive(Debug, Clone)]
pub struct DdpmSampler<B: Backend> {
    schedule: NoiseSchedule,
    forward: ForwardProcess<B>,
    prediction: PredictionTarget,
    variance: VarianceKind,
    clip_x0: bool,
}

impl<B: Backend> DdpmSampler<B> {
    /// A sampler for a model trained on `schedule` to predict `prediction`.
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: PredictionTarget,
        variance: VarianceKind,
        clip_x0: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            forward: schedule.forward_process(device),
            schedule: schedule.clone(),
            prediction,
            variance,
            clip_x0,
        }
    }

    /// The timesteps of a full reverse pass, T − 1 down to 0.
    pub fn timesteps(&self) -> impl Iterator<Item = usize> {
        (0..self.schedule.num_timesteps()).rev()
    }

    /// One reverse step of the batch `x_t`, all at timestep `t`, given the model's output.
    pub fn step(&self, output: Tensor<B, 4>, t: usize, x_t: Tensor<B, 4>) -> Tensor<B, 4> {
        let t_batch = timestep_batch::<B>(t, x_t.dims()[0], &x_t.device());
        self.step_with(output, t, t_batch, x_t)
    }

    /// [`step`](Self::step) with the batch's timestep tensor already on the device.
    fn step_with(
        &self,
        output: Tensor<B, 4>,
        t: usize,
        t_batch: Tensor<B, 1, Int>,
        x_t: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let s = &self.schedule;
        let (x0, noise) =
            self.forward
                .split_prediction(self.prediction, x_t.clone(), output, t_batch);
        let mean = if self.clip_x0 {
            x0.clamp(-1.0, 1.0) * s.posterior_mean_coef_x0[t] + x_t * s.posterior_mean_coef_xt[t]
        } else {
            let noise_coef = s.betas[t] / s.sqrt_one_minus_alphas_cumprod[t];
            (x_t - noise * noise_coef) * s.sqrt_recip_alphas[t]
        };
        if t == 0 {
            return mean;
        }
        let variance = match self.variance {
            VarianceKind::FixedSmall => s.posterior_variance[t],
            VarianceKind::FixedLarge => s.betas[t],
        };
        let z = mean.random_like(Distribution::Normal(0.0, 1.0));
        mean + z * variance.sqrt()
    }

    /// Samples a batch of `shape` from pure noise with `model(x_t, t)`, keeping `snapshots`
    /// intermediate states (at evenly spaced steps, first the noise, last the result).
    pub fn sample(
        &self,
        model: impl Fn(Tensor<B, 4>, Tensor<B, 1, Int>) -> Tensor<B, 4>,
        shape: [usize; 4],
        snapshots: usize,
        device: &B::Device,
    ) -> Vec<Tensor<B, 4>> {
        let n = shape[0];
        let total = self.schedule.num_timesteps();
        let mut x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let keep_every = total.div_ceil(snapshots.max(1)).max(1);
        let mut kept = Vec::new();
        for t in self.timesteps() {
            if snapshots > 1 && (total - 1 - t).is_multiple_of(keep_every) {
                kept.push(x.clone());
            }
            let t_batch = timestep_batch::<B>(t, n, device);
            let output = model(x.clone(), t_batch.clone());
            x = self.step_with(output, t, t_batch, x);
        }
        kept.push(x);
        kept
    }
}

/// `[t; n]`, filled on the device (no host upload per step).
fn timestep_batch<B: Backend>(t: usize, n: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::full([n], t as i64, device)
}
