use thiserror::Error;

/// Why a [`NoiseScheduleConfig`](crate::NoiseScheduleConfig) cannot be turned into a schedule.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScheduleError {
    /// A diffusion process needs at least one step.
    #[error("the number of diffusion timesteps must be at least 1, got 0")]
    ZeroTimesteps,
    /// `beta_start` must be below `beta_end` for the increasing schedules.
    #[error("beta_start ({start}) must be smaller than beta_end ({end})")]
    BetaRangeNotIncreasing {
        /// The configured first beta.
        start: f64,
        /// The configured last beta.
        end: f64,
    },
    /// A configured value lies outside the range it must be in.
    #[error("{name} must be in {range}, got {value}")]
    OutOfRange {
        /// The config field.
        name: &'static str,
        /// The allowed range, written out for the user.
        range: &'static str,
        /// The value given.
        value: f64,
    },
    /// The schedule produced a beta outside (0, 1), so the process is not a valid diffusion.
    #[error("the {schedule} schedule gives beta[{t}] = {beta}, outside (0, 1)")]
    InvalidBeta {
        /// The schedule's name.
        schedule: &'static str,
        /// The offending timestep.
        t: usize,
        /// Its beta.
        beta: f64,
    },
    /// A sampler was asked for no steps, or for more than the schedule has.
    #[error(
        "the number of sampling steps must be between 1 and {total} (the schedule's T), got {steps}"
    )]
    InferenceSteps {
        /// The steps asked for.
        steps: usize,
        /// The schedule's number of timesteps T.
        total: usize,
    },
    /// A sampler's timestep (after `steps_offset`) falls outside the schedule.
    #[error(
        "sampling timestep {t} is outside the schedule's 0..{total} (is steps_offset too large?)"
    )]
    TimestepOutOfRange {
        /// The timestep.
        t: usize,
        /// The schedule's number of timesteps T.
        total: usize,
    },
}
