//! MNIST's IDX files, read directly (gzip'd or not), as MNIST ships.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage};

use crate::folder::to_pixels;
use crate::picture::{Channels, square_crop};
use crate::{DatasetError, ImageStore};

/// The two MNIST splits and their file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistSplit {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl MnistSplit {
    /// (images file, labels file), as published (with `.gz`).
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Train => ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            Self::Test => ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        }
    }
}

/// Images of an IDX3 file: `count` grayscale images of `rows × cols`, row-major `u8`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
}

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let read_error = |source| DatasetError::Read {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(read_error)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(read_error)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn bad_idx(path: &Path, reason: String) -> DatasetError {
    DatasetError::BadIdx {
        path: path.to_path_buf(),
        reason,
    }
}

/// Big-endian u32 fields of an IDX header.
fn header(path: &Path, bytes: &[u8], fields: usize) -> Result<Vec<u32>, DatasetError> {
    if bytes.len() < 4 * fields {
        return Err(bad_idx(
            path,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    Ok(bytes[..4 * fields]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Reads an IDX3 image file (magic 2051).
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DatasetError> {
    let bytes = read_maybe_gzip(path)?;
    let h = header(path, &bytes, 4)?;
    if h[0] != IMAGES_MAGIC {
        return Err(bad_idx(
            path,
            format!("magic {} is not 2051 (IDX3 images)", h[0]),
        ));
    }
    let (count, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    let expected = count * rows * cols;
    let pixels = bytes[16..].to_vec();
    if pixels.len() != expected {
        return Err(bad_idx(
            path,
            format!(
                "header promises {count} images of {rows}x{cols} ({expected} bytes), file has {}",
                pixels.len()
            ),
        ));
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX1 label file (magic 2049).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let bytes = read_maybe_gzip(path)?;
    let h = header(path, &bytes, 2)?;
    if h[0] != LABELS_MAGIC {
        return Err(bad_idx(
            path,
            format!("magic {} is not 2049 (IDX1 labels)", h[0]),
        ));
    }
    let labels = bytes[8..].to_vec();
    if labels.len() != h[1] as usize {
        return Err(bad_idx(
            path,
            format!("header promises {} labels, file has {}", h[1], labels.len()),
        ));
    }
    Ok(labels)
}

/// The IDX images file of `split` in `dir`, with or without `.gz`.
pub fn mnist_images_path(dir: &Path, split: MnistSplit) -> Option<PathBuf> {
    let gz = dir.join(split.file_names().0);
    let plain = gz.with_extension("");
    [gz, plain].into_iter().find(|p| p.is_file())
}

/// MNIST images of `split` from `dir` as an [`ImageStore`] of `image_size` (28 keeps them as
/// they are; other sizes resize) with the given channels.
pub fn load_mnist(
    dir: &Path,
    split: MnistSplit,
    image_size: usize,
    channels: Channels,
) -> Result<ImageStore, DatasetError> {
    let path = mnist_images_path(dir, split).ok_or_else(|| DatasetError::NoImages {
        path: dir.to_path_buf(),
        reason: format!("no {} (or without .gz)", split.file_names().0),
    })?;
    let idx = read_idx_images(&path)?;
    let mut store = ImageStore::new(channels, image_size);
    for pixels in idx.pixels.chunks_exact(idx.rows * idx.cols) {
        let gray = GrayImage::from_raw(idx.cols as u32, idx.rows as u32, pixels.to_vec())
            .expect("chunk has rows x cols bytes");
        let image = DynamicImage::ImageLuma8(gray);
        let image = if idx.rows == image_size && idx.cols == image_size {
            image
        } else {
            square_crop(&image, image_size as u32)
        };
        store.push(&to_pixels(&image, channels));
    }
    Ok(store)
}
