use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::{NoiseSchedule, ScheduleError, betas};

/// How the noise variances beta_1..beta_T grow over the timesteps.
///
/// The names follow diffusers' `beta_schedule` strings where one exists, so a config reads the
/// same on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Evenly spaced from `beta_start` to `beta_end` (Ho et al. 2020; the seed's schedule).
    Linear,
    /// Square of evenly spaced values from `sqrt(beta_start)` to `sqrt(beta_end)` (diffusers'
    /// `scaled_linear`).
    Quadratic,
    /// Nichol & Dhariwal (2021): `alpha_bar(t) = cos²(((t/T + s) / (1 + s))·π/2)`, each beta clipped
    /// at `max_beta` (diffusers' `squaredcos_cap_v2`). Ignores `beta_start` and `beta_end`.
    Cosine,
    /// `sigmoid(linspace(-6, 6, T))` scaled into `[beta_start, beta_end]`.
    Sigmoid,
}

impl BetaSchedule {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Quadratic => "quadratic",
            Self::Cosine => "cosine",
            Self::Sigmoid => "sigmoid",
        }
    }
}

impl std::fmt::Display for BetaSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BetaSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linear" => Ok(Self::Linear),
            "quadratic" | "scaled_linear" => Ok(Self::Quadratic),
            "cosine" | "squaredcos_cap_v2" => Ok(Self::Cosine),
            "sigmoid" => Ok(Self::Sigmoid),
            other => Err(format!(
                "unknown beta schedule '{other}' (expected linear, quadratic, cosine or sigmoid)"
            )),
        }
    }
}

/// Everything that defines a DDPM noise schedule. Defaults are the seed's: 300 steps of linear
/// betas from 1e-4 to 0.02.
///
/// It serialises to JSON (burn's [`Config`]), so a checkpoint can record exactly the schedule it
/// was trained with.
#[derive(Config, Debug, PartialEq)]
pub struct NoiseScheduleConfig {
    /// Number of diffusion steps T.
    #[config(default = 300)]
    pub num_timesteps: usize,
    /// Shape of the beta curve.
    #[config(default = "BetaSchedule::Linear")]
    pub beta_schedule: BetaSchedule,
    /// First beta (linear, quadratic, sigmoid).
    #[config(default = 1e-4)]
    pub beta_start: f64,
    /// Last beta (linear, quadratic, sigmoid).
    #[config(default = 0.02)]
    pub beta_end: f64,
    /// Offset `s` of the cosine schedule, which keeps beta_1 from being vanishingly small.
    #[config(default = 0.008)]
    pub cosine_s: f64,
    /// Upper clip of each beta in the cosine schedule, which avoids a singular last step.
    #[config(default = 0.999)]
    pub max_beta: f64,
}

impl NoiseScheduleConfig {
    /// Checks the config and computes the schedule's tables.
    pub fn init(&self) -> Result<NoiseSchedule, ScheduleError> {
        self.validate()?;
        let betas = betas::compute(self);
        for (t, &beta) in betas.iter().enumerate() {
            if !(beta > 0.0 && beta < 1.0) {
                return Err(ScheduleError::InvalidBeta {
                    schedule: self.beta_schedule.name(),
                    t,
                    beta,
                });
            }
        }
        Ok(NoiseSchedule::from_betas(self.clone(), betas))
    }

    fn validate(&self) -> Result<(), ScheduleError> {
        if self.num_timesteps == 0 {
            return Err(ScheduleError::ZeroTimesteps);
        }
        let unit_open = |name, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(ScheduleError::OutOfRange {
                    name,
                    range: "(0, 1)",
                    value,
                })
            }
        };
        match self.beta_schedule {
            BetaSchedule::Cosine => {
                unit_open("max_beta", self.max_beta)?;
                if !(self.cosine_s >= 0.0 && self.cosine_s.is_finite()) {
                    return Err(ScheduleError::OutOfRange {
                        name: "cosine_s",
                        range: "[0, inf)",
                        value: self.cosine_s,
                    });
                }
            }
            BetaSchedule::Linear | BetaSchedule::Quadratic | BetaSchedule::Sigmoid => {
                unit_open("beta_start", self.beta_start)?;
                unit_open("beta_end", self.beta_end)?;
                // One step has nothing to interpolate, so only the start is used.
                if self.num_timesteps > 1 && self.beta_start >= self.beta_end {
                    return Err(ScheduleError::BetaRangeNotIncreasing {
                        start: self.beta_start,
                        end: self.beta_end,
                    });
                }
            }
        }
        Ok(())
    }
}
