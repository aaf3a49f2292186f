use std::path::PathBuf;

use thiserror::Error;

/// Why an evaluation could not be done.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The FID Inception weights file is missing.
    #[error(
        "no FID Inception weights at {}: download pytorch-fid's pt_inception-2015-12-05-6726825d.pth with `cargo xtask fetch-data inception` (or from https://github.com/mseitzer/pytorch-fid/releases) and pass its path",
        path.display()
    )]
    MissingWeights {
        /// Where they were looked for.
        path: PathBuf,
    },
    /// An image could not be read.
    #[error(transparent)]
    Data(#[from] ddpm_dataset::DatasetError),
    /// The weights file could not be read into the network (another network's file, say).
    #[error(transparent)]
    Weights(#[from] ddpm_unet::WeightsError),
    /// Too few images for the statistic.
    #[error("{what} needs at least {needed} images, got {got}")]
    TooFewImages {
        /// The statistic.
        what: &'static str,
        /// How many it needs.
        needed: usize,
        /// How many there were.
        got: usize,
    },
    /// Two sets of statistics of different feature sizes.
    #[error("the statistics have {0} and {1} features: made by different networks")]
    FeatureSizes(usize, usize),
    /// A statistics file could not be read or written.
    #[error("{}: {reason}", path.display())]
    StatsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The linear algebra failed (a covariance with NaN, say).
    #[error("the Fréchet distance could not be computed: {0}")]
    Numerics(String),
}
