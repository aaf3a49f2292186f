//! Pictures in and out: files to `[-1, 1]` tensors, and tensors back to tiled PNGs.
//!
//! Pixel values map linearly: 0 → -1 and 255 → 1, the range DDPM's sampler assumes.

use std::io::BufWriter;
use std::path::Path;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage, imageops::FilterType};

use crate::DatasetError;

/// Colour layout of the tensors a model works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One channel (MNIST-like data).
    Gray,
    /// Red, green, blue.
    Rgb,
}

impl Channels {
    /// Number of tensor channels.
    pub fn count(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::Rgb => 3,
        }
    }
}

/// Decodes an image file; the error names the file. A JPEG cut short is refused
/// ([`DatasetError::Truncated`]) rather than decoded with its missing part filled in.
pub fn open_image(path: &Path) -> Result<DynamicImage, DatasetError> {
    let read_error = |source| DatasetError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(read_error)?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what: "a JPEG whose last scan has no end-of-image marker",
        });
    }
    reader.decode().map_err(|source| DatasetError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether a JPEG's last scan is followed by its end-of-image marker (`FF D9`). Inside a scan
/// every `FF` byte of the coded data is followed by `00`, so the marker cannot occur there; an
/// embedded thumbnail's scan and marker come before the main image's last scan.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |code: u8| move |pair: &[u8]| pair == [0xFF, code];
    let Some(last_scan) = bytes.windows(2).rposition(marker(0xDA)) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(marker(0xD9))
}

/// Scales the short side to `size` and centre-crops the long side: a `size`×`size` picture.
/// An image that already is `size`×`size` is returned unchanged.
pub fn square_crop(image: &DynamicImage, size: u32) -> DynamicImage {
    if image.width() == size && image.height() == size {
        return image.clone();
    }
    image.resize_to_fill(size, size, FilterType::CatmullRom)
}

/// An image as a `[C, H, W]` tensor in `[-1, 1]`. 16-bit images are scaled, not truncated; alpha
/// is dropped.
pub fn image_to_tensor<B: Backend>(
    image: &DynamicImage,
    channels: Channels,
    device: &B::Device,
) -> Tensor<B, 3> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = match channels {
        Channels::Gray => image.to_luma8().into_raw(),
        Channels::Rgb => image.to_rgb8().into_raw(),
    };
    let data = TensorData::new(pixels, [height, width, channels.count()]);
    let hwc = Tensor::<B, 3>::from_data(data.convert::<f32>(), device);
    hwc.permute([2, 0, 1]) / 127.5 - 1.0
}

/// A `[N, C, H, W]` batch in `[-1, 1]` (values outside are clamped) as N pictures; C must be 1 or 3.
pub fn tensor_to_images<B: Backend>(
    batch: Tensor<B, 4>,
) -> Result<Vec<DynamicImage>, DatasetError> {
    let [n, c, h, w] = batch.dims();
    if c != 1 && c != 3 {
        return Err(DatasetError::BadTensor {
            dims: vec![n, c, h, w],
            reason: "pictures need 1 or 3 channels",
        });
    }
    let pixels = ((batch.clamp(-1.0, 1.0) + 1.0) * 127.5)
        .round()
        .permute([0, 2, 3, 1])
        .into_data()
        .convert::<f32>();
    let pixels: Vec<u8> = pixels
        .as_slice::<f32>()
        .expect("converted to f32 above")
        .iter()
        .map(|&v| v as u8)
        .collect();
    let per_image = c * h * w;
    let images = pixels
        .chunks_exact(per_image)
        .map(|chunk| {
            let (w, h, chunk) = (w as u32, h as u32, chunk.to_vec());
            if c == 1 {
                DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, chunk).expect("sized above"))
            } else {
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, chunk).expect("sized above"))
            }
        })
        .collect();
    Ok(images)
}

/// Lays equally sized pictures out in rows of `columns`, `gap` white pixels apart and around.
pub fn tile(images: &[DynamicImage], columns: usize, gap: u32) -> RgbImage {
    let columns = columns.clamp(1, images.len().max(1));
    let rows = images.len().div_ceil(columns);
    let (cell_w, cell_h) = images
        .first()
        .map_or((0, 0), |image| (image.width(), image.height()));
    let width = columns as u32 * (cell_w + gap) + gap;
    let height = rows as u32 * (cell_h + gap) + gap;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (i, image) in images.iter().enumerate() {
        let x = gap + (i % columns) as u32 * (cell_w + gap);
        let y = gap + (i / columns) as u32 * (cell_h + gap);
        image::imageops::replace(&mut canvas, &image.to_rgb8(), x.into(), y.into());
    }
    canvas
}

/// Writes a PNG atomically: encoded into a temporary file beside `path`, flushed, then renamed,
/// so `path` is either the old file or the whole new one.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), DatasetError> {
    let fail = |reason: String| DatasetError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!("the folder {} does not exist", dir.display())));
    }
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        fail(format!(
            "cannot create a file in {}: {}",
            dir.display(),
            e.kind()
        ))
    })?;
    {
        let mut writer = BufWriter::new(file.as_file_mut());
        image
            .write_to(&mut writer, ImageFormat::Png)
            .map_err(|e| fail(e.to_string()))?;
        std::io::Write::flush(&mut writer).map_err(|e| fail(e.to_string()))?;
    }
    file.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    // Temporary files are created private; a picture should get the usual permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let readable = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(file.path(), readable).map_err(|e| fail(e.to_string()))?;
    }
    file.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}
