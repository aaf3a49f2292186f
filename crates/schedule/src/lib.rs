//! Noise schedules for DDPM (Ho et al. 2020), the closed-form forward process and the samplers
//! that run it backwards.
//!
//! Configure a [`NoiseScheduleConfig`] (defaults: the seed's 300 linear steps from 1e-4 to 0.02),
//! [`init`](NoiseScheduleConfig::init) it into a [`NoiseSchedule`] whose tables are computed once
//! in f64 on the host, then upload what the forward process needs to a device with
//! [`NoiseSchedule::forward_process`] and noise batches with [`ForwardProcess::q_sample`].
//!
//! Sampling follows diffusers' scheduler shape: configure ([`DdpmConfig`], [`DdimConfig`]),
//! `init` with the schedule (which sets the timesteps), then [`Sampler::step`] from the noisiest
//! timestep down, or run the whole loop with [`sample`]. The model is any closure
//! `(x_t, t) -> output`.
//!
//! ```
//! use burn_ndarray::NdArray;
//! use burn::tensor::{Int, Tensor};
//! use ddpm_schedule::NoiseScheduleConfig;
//!
//! let schedule = NoiseScheduleConfig::new().init().unwrap();
//! assert_eq!(schedule.num_timesteps(), 300);
//!
//! let device = Default::default();
//! let forward = schedule.forward_process::<NdArray>(&device);
//! let x0 = Tensor::<NdArray, 4>::zeros([2, 3, 8, 8], &device);
//! let t = Tensor::<NdArray, 1, Int>::from_ints([0, 299], &device);
//! let (x_t, noise) = forward.q_sample(x0, t);
//! assert_eq!(x_t.dims(), noise.dims());
//! ```

mod ancestral;
mod betas;
mod config;
mod ddim;
mod error;
mod forward;
mod prediction;
mod sampler;
mod sampler_config;
mod tables;

pub use ancestral::{DdpmConfig, DdpmSampler, VarianceKind};
pub use config::{BetaSchedule, NoiseScheduleConfig};
pub use ddim::{DdimConfig, DdimSampler, TimestepSpacing};
pub use error::ScheduleError;
pub use forward::ForwardProcess;
pub use prediction::PredictionTarget;
pub use sampler::{Sampler, sample, sample_from};
pub use sampler_config::SamplerConfig;
pub use tables::{NoiseSchedule, snapshot_timesteps};
