//! Images in and out of DDPM.
//!
//! - Datasets: [`DataSource`] picks between [`load_image_folder`], which reads a folder of images
//!   recursively (the seed's `./data/train/`), and [`load_mnist`], which reads MNIST's IDX files;
//!   both decode each file once into an [`ImageStore`] of `u8` pixels, resized (short side) and
//!   centre-cropped to the model's size. [`DataSource::detect`] tells them apart.
//! - Batches: [`epoch_batches`] draws an epoch's shuffled batches through Burn's data loader
//!   ([`ImageBatcher`] makes `[N, C, H, W]` tensors), with `drop_last` and mid-epoch resume.
//! - Pictures: [`picture`] turns files into tensors and tensors into PNG grids and strips.
//!
//! Pixel values map linearly, 0 → -1 and 255 → 1: the range DDPM's sampler assumes. (The seed
//! divided by 255 alone, which left them in `[0, 1]`.)

mod batcher;
mod error;
mod folder;
mod loader;
mod mnist;
pub mod picture;
mod source;
mod store;

pub use batcher::{ImageBatcher, random_horizontal_flip};
pub use error::DatasetError;
pub use folder::{
    FolderReport, IMAGE_EXTENSIONS, ImageFolderOptions, SkippedFile, list_images, load_image_folder,
};
pub use loader::{LoaderOptions, epoch_batches};
pub use mnist::{
    IdxImages, MnistSplit, load_mnist, mnist_images_path, read_idx_images, read_idx_labels,
};
pub use picture::{Channels, jpeg_is_complete};
pub use source::DataSource;
pub use store::{ImageItem, ImageStore};
