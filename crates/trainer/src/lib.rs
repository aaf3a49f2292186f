//! DDPM training, generic over `B: AutodiffBackend` (burn-cuda on a GPU, burn-ndarray on CPU).
//!
//! A [`TrainConfig`] holds the whole recipe (presets: [`Preset::Seed`], [`Preset::DdpmCifar10`],
//! [`Preset::CpuDemo`]) and is saved in every checkpoint. [`train`] runs it: batches from
//! `ddpm-dataset`, the forward process of `ddpm-schedule`, a noise predictor of `ddpm-unet`,
//! burn's Adam ([`ThreadedAdam`]: on several threads on the CPU, or by a one-pass step a binary
//! registers for its backend, [`register_adam_step`]) with warm-up and gradient clipping, an EMA
//! copy of the weights, sample grids from the ancestral sampler, JSONL metrics, and atomic
//! checkpoints that resume exactly: every random draw of step `k` comes from
//! `(seed, k)`, and each epoch's data order from `(seed, epoch)`.
//!
//! Reproducibility assumes one run per process: Burn's CPU backends keep one random generator
//! for the whole process, so two runs on parallel threads would draw from each other's stream.

mod adam_step;
mod checkpoint;
mod config;
mod ema;
mod error;
mod inference;
mod loss;
mod optimizer;
mod progress;
mod train;

pub use adam_step::{AdamConstants, AdamStepFn, adam_step, register_adam_step};
pub use checkpoint::{CheckpointState, RunIndex, checkpoint_name, read_state, resolve_checkpoint};
pub use config::{EmaConfig, LossKind, OptimizerConfig, Preset, TrainConfig};
pub use ema::{ema_decay, update_ema};
pub use error::TrainError;
pub use inference::{LoadedModel, load_model, save_model_checkpoint};
pub use loss::loss;
pub use optimizer::{AdamRecord, ThreadedAdam};
pub use progress::MetricsRecord;
pub use train::{Fault, TrainOptions, TrainReport, batch_loss, optimizer, train};
