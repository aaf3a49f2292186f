//! DDPM training, generic over `B: AutodiffBackend`.
//!
//! A [`TrainConfig`] holds the whole recipe (presets: [`Preset::Seed`], [`Preset::DdpmCifar10`],
//! [`Preset::CpuDemo`]) and is saved in every checkpoint. A [`Trainer`] holds a run's state: the
//! noise predictor of `ddpm-unet`, burn's Adam ([`ThreadedAdam`]) with warm-up and gradient
//! clipping, an EMA copy of the weights, and the step count. [`Trainer::step`] is one optimiser
//! step on a batch (the forward process of `ddpm-schedule`, the loss, the gradients, Adam, the
//! EMA); [`Trainer::run`] is the loop over a dataset of `ddpm-dataset`, with JSONL metrics,
//! sample grids and atomic checkpoints that resume exactly: every random draw of step `k` comes
//! from `(seed, k)`, and each epoch's data order from `(seed, epoch)`.
//!
//! The trainer computes through the tables of `ddpm-ops` ([`ddpm_ops::TrainingOps`]): burn's
//! operations, or a kernel crate's for the backend. The [`Pipeline`] turns a model and a sampler
//! into pictures, for the training grids and for `ddpm sample` alike.
//!
//! Reproducibility assumes one run per process: Burn's CPU backends keep one random generator
//! for the whole process, so two runs on parallel threads would draw from each other's stream.

mod checkpoint;
mod config;
mod ema;
mod error;
mod inference;
mod loss;
mod optimizer;
mod pipeline;
mod plot;
mod progress;
mod quality;
mod run;
mod throughput;
mod trainer;

pub use checkpoint::{
    CheckpointState, RunIndex, checkpoint_name, read_state, remove_staging_leftovers,
    resolve_checkpoint,
};
pub use config::{
    EmaConfig, FidConfig, LossKind, LossWeighting, LrDecay, OptimizerConfig, Preset, TrainConfig,
};
pub use ema::{ema_decay, update_ema};
pub use error::TrainError;
pub use inference::{
    Imported, LoadedModel, import_seed_checkpoint, load_model, save_model_checkpoint,
};
pub use loss::{loss, weighted_loss};
pub use optimizer::{AdamRecord, ThreadedAdam};
pub use pipeline::{GAP, Pipeline, grid, noised_frames, strip};
pub use plot::training_curves;
pub use progress::{FidRecord, MetricsLine, MetricsRecord, image_progress, read_metrics};
pub use quality::{SampledFrom, checkpoint_stats, sample_stats, source_stats};
pub use run::{TrainOptions, TrainReport};
pub use throughput::{StepTimes, Timing, time_sampling, time_training};
pub use trainer::Trainer;
