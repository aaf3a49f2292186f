//! Where training images come from: a folder of images, or MNIST's IDX files.

use std::path::{Path, PathBuf};

use crate::mnist::{MnistSplit, load_mnist, mnist_images_path};
use crate::picture::Channels;
use crate::{DatasetError, FolderReport, ImageFolderOptions, ImageStore, load_image_folder};

/// A training-image source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A folder of image files, read recursively.
    Folder(PathBuf),
    /// MNIST's IDX files in a folder.
    Mnist {
        /// The folder.
        dir: PathBuf,
        /// Which split's files it holds.
        split: MnistSplit,
    },
}

impl DataSource {
    /// MNIST when `path` holds its IDX image files (the training split when both are there),
    /// otherwise an image folder.
    pub fn detect(path: &Path) -> Self {
        for split in [MnistSplit::Train, MnistSplit::Test] {
            if mnist_images_path(path, split).is_some() {
                return Self::Mnist {
                    dir: path.to_path_buf(),
                    split,
                };
            }
        }
        Self::Folder(path.to_path_buf())
    }

    /// Decodes every image once into a store; for folders, also the report of what was skipped.
    pub fn load(
        &self,
        options: &ImageFolderOptions,
    ) -> Result<(ImageStore, Option<FolderReport>), DatasetError> {
        match self {
            Self::Folder(dir) => {
                let (store, report) = load_image_folder(dir, options)?;
                Ok((store, Some(report)))
            }
            Self::Mnist { dir, split } => {
                let store = load_mnist(dir, *split, options.image_size, options.channels)?;
                Ok((store, None))
            }
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(dir) => write!(f, "image folder {}", dir.display()),
            Self::Mnist { dir, split } => {
                let split = match split {
                    MnistSplit::Train => "training",
                    MnistSplit::Test => "test",
                };
                write!(f, "MNIST {split} split in {}", dir.display())
            }
        }
    }
}

impl Default for ImageFolderOptions {
    /// The seed's settings: 32 px RGB, undecodable files skipped with a warning.
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: Channels::Rgb,
            strict: false,
        }
    }
}
