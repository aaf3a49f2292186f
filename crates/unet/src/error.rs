use std::path::PathBuf;

use thiserror::Error;

/// A model config that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnetError {
    /// A config field has a value the architecture cannot use.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// The model's weights alone would not fit in memory.
    #[error(
        "the model has {elements} weights, {:.1} GB as f32, but this machine has {:.1} GB of \
         memory available",
        *bytes as f64 / 1e9,
        *available as f64 / 1e9
    )]
    TooLarge {
        /// Float values in the model (parameters and running statistics).
        elements: u64,
        /// What they take as f32.
        bytes: u64,
        /// Memory available.
        available: u64,
    },
}

/// Weights that cannot be read into, or written from, a model. Every variant names the file or
/// the tensor.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The file is missing, truncated or not in the expected format.
    #[error("cannot read weights from {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model has a tensor the file lacks.
    #[error("{}: missing tensor '{key}'", path.display())]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The tensor's key, as in the file's naming.
        key: String,
    },
    /// The file has a tensor the model does not.
    #[error("{}: unexpected tensor '{key}' (not part of this model)", path.display())]
    UnexpectedKey {
        /// The file.
        path: PathBuf,
        /// The tensor's key.
        key: String,
    },
    /// A tensor's shape or type differs from the model's.
    #[error("{}: {detail}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// burn-store's description, naming the tensor.
        detail: String,
    },
    /// The weights could not be written.
    #[error("cannot write weights to {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
