//! Decoded images kept as `u8` pixels, the form every dataset here is cached in.

use burn::data::dataset::Dataset;

use crate::picture::Channels;

/// Equally sized square images, decoded once and kept as interleaved `u8` pixels (HWC) in one
/// buffer: 50,000 CIFAR images cost 150 MB, not the 600 MB of f32 tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageStore {
    pixels: Vec<u8>,
    channels: Channels,
    size: usize,
    len: usize,
}

/// One image of an [`ImageStore`]: `size × size × channels` interleaved `u8` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Interleaved pixels, row by row (HWC).
    pub pixels: Vec<u8>,
}

impl ImageStore {
    /// An empty store for `size × size` images with the given channels.
    pub fn new(channels: Channels, size: usize) -> Self {
        Self {
            pixels: Vec::new(),
            channels,
            size,
            len: 0,
        }
    }

    /// A store over `pixels`, images of `size × size × channels` bytes laid end to end (a
    /// trailing partial image is dropped).
    pub fn from_pixels(mut pixels: Vec<u8>, channels: Channels, size: usize) -> Self {
        let image_len = size * size * channels.count();
        let len = pixels.len().checked_div(image_len).unwrap_or(0);
        pixels.truncate(len * image_len);
        Self {
            pixels,
            channels,
            size,
            len,
        }
    }

    /// Appends one image's interleaved pixels; returns `false` (and stores nothing) when the
    /// length is not `size × size × channels`.
    pub fn push(&mut self, pixels: &[u8]) -> bool {
        if pixels.len() != self.image_len() {
            return false;
        }
        self.pixels.extend_from_slice(pixels);
        self.len += 1;
        true
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.size * self.size * self.channels.count()
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.pixels.get(index * n..(index + 1) * n)
    }

    /// Side of every image.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Colour layout of every image.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Memory held by the pixels, in bytes.
    pub fn bytes(&self) -> usize {
        self.pixels.len()
    }
}

impl Dataset<ImageItem> for ImageStore {
    fn get(&self, index: usize) -> Option<ImageItem> {
        self.image(index).map(|pixels| ImageItem {
            pixels: pixels.to_vec(),
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}
