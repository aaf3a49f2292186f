//! The FID Inception network (the TensorFlow graph of 2015-12-05 in pytorch-fid's layout), fed as
//! pytorch-fid feeds it: the weights from a file the user has (pytorch-fid's release file, or one
//! with its keys), images resized to 299×299 bilinearly with `align_corners = false` and scaled to
//! `[-1, 1]` as `2x − 1`.
//!
//! burn-train 0.21 ships this network with its FID metric, but that metric normalises with
//! ImageNet's mean and deviation, resizes with aligned corners, downloads under a name that is not
//! pytorch-fid's file, and its layers call burn's convolution directly. The network here computes
//! through a table of operations ([`FidInception::with_ops`]), so ddpm-flex's convolutions serve
//! it on the CPU.

use std::path::Path;

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use ddpm_ops::Ops;
use ddpm_unet::{KeyLayout, load_pytorch};
use image::DynamicImage;

use crate::EvalError;
use crate::network::InceptionV3;

/// Features per image: the network's pool3 layer.
pub const FEATURES: usize = 2048;

/// Side of the square images the network takes.
const SIDE: usize = 299;

/// pytorch-fid's keys and the network's snake-case field names; the file's classifier head
/// (`fc`) is not part of the feature extractor.
const LAYOUT: KeyLayout = KeyLayout {
    renames: &[
        ("Conv2d_1a_3x3.", "conv2d_1a_3x3."),
        ("Conv2d_2a_3x3.", "conv2d_2a_3x3."),
        ("Conv2d_2b_3x3.", "conv2d_2b_3x3."),
        ("Conv2d_3b_1x1.", "conv2d_3b_1x1."),
        ("Conv2d_4a_3x3.", "conv2d_4a_3x3."),
        ("Mixed_5b.", "mixed_5b."),
        ("Mixed_5c.", "mixed_5c."),
        ("Mixed_5d.", "mixed_5d."),
        ("Mixed_6a.", "mixed_6a."),
        ("Mixed_6b.", "mixed_6b."),
        ("Mixed_6c.", "mixed_6c."),
        ("Mixed_6d.", "mixed_6d."),
        ("Mixed_6e.", "mixed_6e."),
        ("Mixed_7a.", "mixed_7a."),
        ("Mixed_7b.", "mixed_7b."),
        ("Mixed_7c.", "mixed_7c."),
    ],
    unused: &["fc."],
};

/// The FID Inception network with its weights, on backend `B`, and the table it computes with.
#[derive(Debug)]
pub struct FidInception<B: Backend> {
    network: InceptionV3<B>,
    ops: Ops<B>,
}

impl<B: Backend> FidInception<B> {
    /// Loads pytorch-fid's weights (`pt_inception-2015-12-05-6726825d.pth`, or a file with the
    /// same keys). A missing file, or one of another network (a tensor missing, extra or of
    /// another shape), is an error naming it.
    pub fn load(path: &Path, device: &B::Device) -> Result<Self, EvalError> {
        if !path.is_file() {
            return Err(EvalError::MissingWeights {
                path: path.to_path_buf(),
            });
        }
        let network = load_pytorch(InceptionV3::new(device), path, &LAYOUT)?;
        Ok(Self {
            network,
            ops: Ops::burn(),
        })
    }

    /// The network computing through `ops` (burn's operations by default).
    pub fn with_ops(self, ops: Ops<B>) -> Self {
        Self { ops, ..self }
    }

    /// The pool3 features `[N, 2048]` of images given as pixel values `[N, 3, H, W]` in
    /// `0..=255`: scaled to `[0, 1]`, resized to 299×299 (bilinear, `align_corners = false`) and
    /// scaled to `[-1, 1]`, as pytorch-fid's `InceptionV3` does.
    pub fn features(&self, pixels: Tensor<B, 4>) -> Tensor<B, 2> {
        let [_, _, height, width] = pixels.dims();
        let x = pixels / 255.0;
        let x = match (height, width) == (SIDE, SIDE) {
            true => x,
            false => {
                let options =
                    InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
                interpolate(x, [SIDE, SIDE], options)
            }
        };
        self.network.forward(&self.ops, x * 2.0 - 1.0)
    }
}

/// Pictures as pixel values `[N, 3, H, W]` in `0..=255`, gray ones repeated to three channels
/// (PIL's `convert('RGB')`, as pytorch-fid reads files). All must share one size.
pub fn pixels<B: Backend>(pictures: &[DynamicImage], device: &B::Device) -> Tensor<B, 4> {
    let (width, height) = pictures
        .first()
        .map_or((0, 0), |p| (p.width() as usize, p.height() as usize));
    let mut bytes = Vec::with_capacity(pictures.len() * width * height * 3);
    for picture in pictures {
        assert_eq!(
            (picture.width() as usize, picture.height() as usize),
            (width, height),
            "pictures of one batch share a size"
        );
        bytes.extend_from_slice(picture.to_rgb8().as_raw());
    }
    let data = TensorData::new(bytes, [pictures.len(), height, width, 3]).convert::<f32>();
    Tensor::<B, 4>::from_data(data, device).permute([0, 3, 1, 2])
}

/// A model's output `[N, C, H, W]` in `[-1, 1]` as the pixel values a PNG of it would hold
/// (clamped, `(x + 1)·127.5`, rounded), gray repeated to three channels: what pytorch-fid
/// would read back from the saved samples.
pub fn quantize<B: Backend>(images: Tensor<B, 4>) -> Tensor<B, 4> {
    let pixels = ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).round();
    match pixels.dims()[1] {
        1 => pixels.repeat_dim(1, 3),
        _ => pixels,
    }
}
