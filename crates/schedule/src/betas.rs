//! The beta curves, in f64 on the host.

use std::f64::consts::FRAC_PI_2;

use crate::{BetaSchedule, NoiseScheduleConfig};

/// The betas of a validated config, one per timestep.
pub(crate) fn compute(config: &NoiseScheduleConfig) -> Vec<f64> {
    let t_max = config.num_timesteps;
    let (start, end) = (config.beta_start, config.beta_end);
    match config.beta_schedule {
        BetaSchedule::Linear => linspace(start, end, t_max),
        BetaSchedule::Quadratic => linspace(start.sqrt(), end.sqrt(), t_max)
            .into_iter()
            .map(|b| b * b)
            .collect(),
        BetaSchedule::Sigmoid => linspace(-6.0, 6.0, t_max)
            .into_iter()
            .map(|x| sigmoid(x) * (end - start) + start)
            .collect(),
        BetaSchedule::Cosine => {
            let alpha_bar = |t: f64| {
                let phase = (t / t_max as f64 + config.cosine_s) / (1.0 + config.cosine_s);
                (phase * FRAC_PI_2).cos().powi(2)
            };
            (0..t_max)
                .map(|t| {
                    let beta = 1.0 - alpha_bar((t + 1) as f64) / alpha_bar(t as f64);
                    beta.min(config.max_beta)
                })
                .collect()
        }
    }
}

/// `n` evenly spaced values from `start` to `end` inclusive, as `torch.linspace` gives them.
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n).map(|i| start + step * i as f64).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
