use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::{ForwardProcess, NoiseScheduleConfig};

/// A noise schedule and every table DDPM derives from it, computed once on the host in f64.
///
/// Index `t` runs over `0..num_timesteps`; the paper's step `t + 1`. Build it with
/// [`NoiseScheduleConfig::init`], then move what the forward process needs to a device with
/// [`NoiseSchedule::forward_process`].
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    config: NoiseScheduleConfig,
    /// beta_t, the variance of the noise added at step t.
    pub betas: Vec<f64>,
    /// alpha_t = 1 - beta_t.
    pub alphas: Vec<f64>,
    /// alpha_bar_t = prod_{s <= t} alpha_s.
    pub alphas_cumprod: Vec<f64>,
    /// alpha_bar_{t-1}, with alpha_bar_{-1} = 1.
    pub alphas_cumprod_prev: Vec<f64>,
    /// 1 / sqrt(alpha_t).
    pub sqrt_recip_alphas: Vec<f64>,
    /// sqrt(alpha_bar_t): the signal scale of x_t.
    pub sqrt_alphas_cumprod: Vec<f64>,
    /// sqrt(1 - alpha_bar_t): the noise scale of x_t.
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    /// Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).
    pub posterior_variance: Vec<f64>,
    /// log of the posterior variance, with the t = 0 entry (which is 0) replaced by t = 1's so
    /// the log stays finite.
    pub posterior_log_variance_clipped: Vec<f64>,
    /// Coefficient of x_0 in the posterior mean: beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t).
    pub posterior_mean_coef_x0: Vec<f64>,
    /// Coefficient of x_t in the posterior mean: (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t).
    pub posterior_mean_coef_xt: Vec<f64>,
}

impl NoiseSchedule {
    pub(crate) fn from_betas(config: NoiseScheduleConfig, betas: Vec<f64>) -> Self {
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let alphas_cumprod: Vec<f64> = alphas
            .iter()
            .scan(1.0, |product, a| {
                *product *= a;
                Some(*product)
            })
            .collect();
        let alphas_cumprod_prev: Vec<f64> = std::iter::once(1.0)
            .chain(alphas_cumprod[..alphas_cumprod.len() - 1].iter().copied())
            .collect();
        let per_step = |f: &dyn Fn(usize) -> f64| (0..betas.len()).map(f).collect::<Vec<f64>>();

        let posterior_variance =
            per_step(&|t| betas[t] * (1.0 - alphas_cumprod_prev[t]) / (1.0 - alphas_cumprod[t]));
        let first_nonzero = posterior_variance.get(1).copied().unwrap_or(betas[0]);
        let posterior_log_variance_clipped = per_step(&|t| {
            if t == 0 {
                first_nonzero
            } else {
                posterior_variance[t]
            }
            .ln()
        });
        Self {
            sqrt_recip_alphas: per_step(&|t| 1.0 / alphas[t].sqrt()),
            sqrt_alphas_cumprod: per_step(&|t| alphas_cumprod[t].sqrt()),
            sqrt_one_minus_alphas_cumprod: per_step(&|t| (1.0 - alphas_cumprod[t]).sqrt()),
            posterior_mean_coef_x0: per_step(&|t| {
                betas[t] * alphas_cumprod_prev[t].sqrt() / (1.0 - alphas_cumprod[t])
            }),
            posterior_mean_coef_xt: per_step(&|t| {
                (1.0 - alphas_cumprod_prev[t]) * alphas[t].sqrt() / (1.0 - alphas_cumprod[t])
            }),
            posterior_variance,
            posterior_log_variance_clipped,
            config,
            betas,
            alphas,
            alphas_cumprod,
            alphas_cumprod_prev,
        }
    }

    /// The config this schedule was built from.
    pub fn config(&self) -> &NoiseScheduleConfig {
        &self.config
    }

    /// Number of diffusion steps T.
    pub fn num_timesteps(&self) -> usize {
        self.betas.len()
    }

    /// Uploads the tables the forward process and the target conversions need to `device`, once.
    pub fn forward_process<B: Backend>(&self, device: &B::Device) -> ForwardProcess<B> {
        let upload = |table: &[f64]| {
            Tensor::<B, 1>::from_floats(TensorData::new(table.to_vec(), [table.len()]), device)
        };
        ForwardProcess::new(
            upload(&self.sqrt_alphas_cumprod),
            upload(&self.sqrt_one_minus_alphas_cumprod),
        )
    }
}

/// The timesteps a picture of the process shows: `0, T/n, 2T/n, …, (n-1)T/n` (the seed's frames),
/// then the last step `T - 1`, where x_t is almost pure noise. Increasing, without repeats.
pub fn snapshot_timesteps(num_timesteps: usize, frames: usize) -> Vec<usize> {
    let mut steps: Vec<usize> = (0..frames).map(|i| i * num_timesteps / frames).collect();
    if num_timesteps > 0 {
        steps.push(num_timesteps - 1);
    }
    steps.dedup();
    steps
}
