use std::path::PathBuf;

use thiserror::Error;

/// Why a training run could not start or stopped.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The config asks for something the model or loop cannot do.
    #[error("invalid training config: {0}")]
    Config(String),
    /// The training data could not be loaded.
    #[error(transparent)]
    Data(#[from] ddpm_dataset::DatasetError),
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error("the loss became {value} at step {step}; stopped. The last good checkpoint is kept{}", resume_hint(.last_checkpoint))]
    NonFiniteLoss {
        /// The step whose loss was not finite.
        step: u64,
        /// The value.
        value: f32,
        /// The newest checkpoint written before it, if any.
        last_checkpoint: Option<PathBuf>,
    },
    /// A checkpoint could not be written or read.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A checkpoint made with another model or schedule.
    #[error("checkpoint {} was trained with a different {what}; refusing to resume (its config: {saved})", path.display())]
    ConfigMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Which part differs.
        what: &'static str,
        /// That part of the checkpoint's config, as JSON.
        saved: String,
    },
    /// FID could not be measured.
    #[error(transparent)]
    Eval(#[from] ddpm_eval::EvalError),
    /// The device failed to run the work.
    #[error("the device failed: {0}")]
    Device(String),
    /// Writing a sample grid or the metrics failed.
    #[error("cannot write {}: {reason}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn resume_hint(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!(": {}", path.display()),
        None => " (none was written yet)".to_string(),
    }
}
