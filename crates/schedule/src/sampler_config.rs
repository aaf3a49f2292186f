//! Either sampler's settings as one value: what a command line, a recipe or an evaluation names.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::{DdimConfig, DdpmConfig, NoiseSchedule, PredictionTarget, Sampler, ScheduleError};

/// The settings of a DDPM or a DDIM sampler. Serialises as `{"ddpm": {...}}` or
/// `{"ddim": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerConfig {
    /// Ancestral sampling over all T timesteps.
    Ddpm(DdpmConfig),
    /// DDIM over a few timesteps.
    Ddim(DdimConfig),
}

impl SamplerConfig {
    /// The sampler for a model trained on `schedule` to predict `prediction`.
    pub fn init<B: Backend>(
        &self,
        schedule: &NoiseSchedule,
        prediction: PredictionTarget,
    ) -> Result<Box<dyn Sampler<B>>, ScheduleError> {
        Ok(match self {
            Self::Ddpm(config) => Box::new(config.init(schedule, prediction)),
            Self::Ddim(config) => Box::new(config.init(schedule, prediction)?),
        })
    }

    /// `"DDPM"` or `"DDIM"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ddpm(_) => "DDPM",
            Self::Ddim(_) => "DDIM",
        }
    }
}
