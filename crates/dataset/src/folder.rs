//! A folder of images, read recursively — the seed's `./data/train/`.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use image::{DynamicImage, GenericImageView, Rgb, RgbImage};
use rayon::prelude::*;

use crate::picture::{Channels, open_image, square_crop};
use crate::{DatasetError, ImageStore};

/// File extensions read as images (case-insensitive): whatever the `image` crate decodes here.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

/// How to read an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolderOptions {
    /// Side of the square images the model trains on (short side resized, then centre-cropped).
    pub image_size: usize,
    /// Colour layout to convert every image to.
    pub channels: Channels,
    /// Fail on the first undecodable file instead of skipping it with a warning.
    pub strict: bool,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What loading a folder found.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderReport {
    /// Image files found, in load order (natural order of their paths).
    pub files: Vec<PathBuf>,
    /// Files that could not be decoded (empty when `strict`).
    pub skipped: Vec<SkippedFile>,
    /// Images whose short side was below the training size, so they were enlarged.
    pub upscaled: usize,
}

impl FolderReport {
    /// One line for the user about skipped files, or `None` when none were: the count and the
    /// first few paths with their reasons.
    pub fn skipped_summary(&self) -> Option<String> {
        const SHOWN: usize = 3;
        let first = self.skipped.first()?;
        let mut line = format!(
            "skipped {} of {} image files that could not be decoded: {} ({})",
            self.skipped.len(),
            self.files.len(),
            first.path.display(),
            first.reason
        );
        for file in self.skipped.iter().skip(1).take(SHOWN - 1) {
            line.push_str(&format!("; {} ({})", file.path.display(), file.reason));
        }
        if self.skipped.len() > SHOWN {
            line.push_str(&format!("; and {} more", self.skipped.len() - SHOWN));
        }
        Some(line)
    }

    /// One line for the user about images smaller than the training size, or `None` when there
    /// were none: enlarged pictures are blurrier than the rest.
    pub fn upscaled_summary(&self, image_size: usize) -> Option<String> {
        (self.upscaled > 0).then(|| {
            format!(
                "{} of {} images are smaller than {image_size}x{image_size} and were enlarged \
                 to it (blurrier than the rest)",
                self.upscaled,
                self.files.len() - self.skipped.len(),
            )
        })
    }
}

/// Lists the image files under `root`, recursively, in natural order (`2.png` before `12.png`,
/// as the seed sorted them).
pub fn list_images(root: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !root.is_dir() {
        return Err(DatasetError::MissingFolder {
            path: root.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = entry.map_err(|e| DatasetError::Read {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e.into(),
        })?;
        let is_image = entry.path().extension().is_some_and(|ext| {
            let ext = ext.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&ext.as_str())
        });
        if entry.file_type().is_file() && is_image {
            files.push(entry.into_path());
        }
    }
    files.sort_by(|a, b| natord::compare(&a.to_string_lossy(), &b.to_string_lossy()));
    if files.is_empty() {
        return Err(DatasetError::NoImages {
            path: root.to_path_buf(),
            reason: format!(
                "no files with an image extension ({})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        });
    }
    Ok(files)
}

/// Reads every image under `root` into an [`ImageStore`], decoding in parallel, each file once.
///
/// Images are converted to `options.channels` (grayscale replicated to RGB; alpha composited on
/// white, so transparent backgrounds become white; 16-bit scaled to 8-bit), the short side
/// resized to `options.image_size` and the long side centre-cropped.
pub fn load_image_folder(
    root: &Path,
    options: &ImageFolderOptions,
) -> Result<(ImageStore, FolderReport), DatasetError> {
    let files = list_images(root)?;
    let size = options.image_size as u32;
    // Decode straight into one pre-sized buffer, a slot per file, so the pixels are never held
    // twice; slots of files that fail are compacted away afterwards.
    let image_len = options.image_size * options.image_size * options.channels.count();
    let mut pixels = vec![0u8; files.len() * image_len];
    let loaded: Vec<Result<bool, DatasetError>> = pixels
        .par_chunks_mut(image_len)
        .zip(files.par_iter())
        .map(|(slot, path)| {
            let image = open_image(path)?;
            slot.copy_from_slice(&to_pixels(&square_crop(&image, size), options.channels));
            Ok(image.width().min(image.height()) < size)
        })
        .collect();

    let mut skipped = Vec::new();
    let mut kept = 0;
    let upscaled = loaded.iter().filter(|l| matches!(l, Ok(true))).count();
    for (index, loaded) in loaded.into_iter().enumerate() {
        match loaded.err() {
            None => {
                if kept != index {
                    pixels
                        .copy_within(index * image_len..(index + 1) * image_len, kept * image_len);
                }
                kept += 1;
            }
            Some(error) if options.strict => return Err(error),
            Some(error) => skipped.push(SkippedFile {
                path: files[index].clone(),
                reason: error.cause_line(),
            }),
        }
    }
    pixels.truncate(kept * image_len);
    let store = ImageStore::from_pixels(pixels, options.channels, options.image_size);
    let report = FolderReport {
        files,
        skipped,
        upscaled,
    };
    if store.is_empty() {
        return Err(DatasetError::NoImages {
            path: root.to_path_buf(),
            reason: format!(
                "none of its {} image files could be decoded: {}",
                report.files.len(),
                report.skipped_summary().unwrap_or_default()
            ),
        });
    }
    Ok((store, report))
}

/// An image as interleaved `u8` pixels of the requested layout.
pub(crate) fn to_pixels(image: &DynamicImage, channels: Channels) -> Vec<u8> {
    let rgb = if image.color().has_alpha() {
        on_white(image)
    } else {
        image.to_rgb8()
    };
    match channels {
        Channels::Rgb => rgb.into_raw(),
        Channels::Gray => DynamicImage::ImageRgb8(rgb).to_luma8().into_raw(),
    }
}

/// Composites an image with alpha over a white background.
fn on_white(image: &DynamicImage) -> RgbImage {
    let (width, height) = image.dimensions();
    let rgba = image.to_rgba8();
    RgbImage::from_fn(width, height, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = a as u32;
        let blend = |c: u8| ((c as u32 * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        Rgb([blend(r), blend(g), blend(b)])
    })
}
