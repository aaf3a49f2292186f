//! Images in and out of DDPM: decoding and cropping pictures into `[-1, 1]` tensors, and turning
//! batches of model outputs back into PNG grids and strips.
//!
//! The training dataset proper (recursive image folders decoded once into a `u8` cache, MNIST IDX
//! files, batching through Burn's data loader) lands here with its own issue.

mod error;
pub mod picture;

pub use error::DatasetError;
