use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong reading or writing images. Every variant names the file.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not an image the `image` crate can decode.
    #[error("cannot decode {} as an image", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// A file whose data stops before its end: a JPEG without the marker that ends its last
    /// scan (decoders fill the rest in, so it would train on a part-grey picture).
    #[error("{} is cut short: {what}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
    /// An output picture could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A dataset folder that does not exist.
    #[error("dataset folder {} does not exist", path.display())]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A dataset location with nothing to train on.
    #[error("no training images in {}: {reason}", path.display())]
    NoImages {
        /// The folder.
        path: PathBuf,
        /// What was looked for, or why nothing could be used.
        reason: String,
    },
    /// An IDX file (MNIST's format) that is not what its header says.
    #[error("{} is not a valid IDX file: {reason}", path.display())]
    BadIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor cannot be shown as a picture.
    #[error("cannot turn a tensor of shape {dims:?} into pictures: {reason}")]
    BadTensor {
        /// The tensor's shape.
        dims: Vec<usize>,
        /// Why.
        reason: &'static str,
    },
}

impl DatasetError {
    /// The error and its cause on one line.
    pub fn cause_line(&self) -> String {
        match std::error::Error::source(self) {
            Some(source) => format!("{self}: {source}"),
            None => self.to_string(),
        }
    }
}
