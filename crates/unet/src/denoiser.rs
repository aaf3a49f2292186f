//! Either architecture behind one type, chosen by a serialisable config.

use burn::module::Module;
use burn::tensor::{Int, Tensor, backend::Backend};
use ddpm_ops::Ops;
use serde::{Deserialize, Serialize};

use crate::{DdpmUnet, DdpmUnetConfig, NoisePredictor, SimpleUnet, SimpleUnetConfig, UnetError};

/// Which noise predictor to build, with its settings. Serialises as
/// `{"simple_unet": {...}}` or `{"ddpm_unet": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenoiserConfig {
    /// The seed's SimpleUnet.
    SimpleUnet(SimpleUnetConfig),
    /// The DDPM paper's U-Net.
    DdpmUnet(DdpmUnetConfig),
}

impl DenoiserConfig {
    /// Builds the model with fresh weights; refuses, before allocating them, a model whose
    /// weights would not fit in the available memory.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Denoiser<B>, UnetError> {
        let model = match self {
            Self::SimpleUnet(config) => Denoiser::SimpleUnet(config.init(device)?),
            Self::DdpmUnet(config) => Denoiser::DdpmUnet(config.init(device)?),
        };
        crate::params::check_fits(&model)?;
        Ok(model)
    }

    /// Channels of the images the model works on.
    pub fn image_channels(&self) -> usize {
        match self {
            Self::SimpleUnet(config) => config.image_channels,
            Self::DdpmUnet(config) => config.image_channels,
        }
    }

    /// Image sides must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        match self {
            Self::SimpleUnet(config) => 1 << (config.channels.len() - 1),
            Self::DdpmUnet(config) => 1 << (config.channel_multipliers.len() - 1),
        }
    }
}

impl std::fmt::Display for DenoiserConfig {
    /// The architecture and its main settings, on one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SimpleUnet(c) => write!(
                f,
                "SimpleUnet, channels {:?}, time embedding {}",
                c.channels, c.time_embedding_dim
            ),
            Self::DdpmUnet(c) => write!(
                f,
                "DdpmUnet, base {} x {:?}, {} res blocks, attention at {:?}",
                c.base_channels, c.channel_multipliers, c.num_res_blocks, c.attention_resolutions
            ),
        }
    }
}

/// A noise predictor of either architecture.
// One model per run, moved rarely: the variants' size difference costs nothing (burn's own
// `Activation` enum makes the same choice).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Denoiser<B: Backend> {
    /// The seed's SimpleUnet.
    SimpleUnet(SimpleUnet<B>),
    /// The DDPM paper's U-Net.
    DdpmUnet(DdpmUnet<B>),
}

impl<B: Backend> Denoiser<B> {
    /// Writes the weights as safetensors in the reference PyTorch module's key layout.
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<(), crate::WeightsError> {
        match self {
            Self::SimpleUnet(model) => model.save_safetensors(path),
            Self::DdpmUnet(model) => model.save_safetensors(path),
        }
    }
}

impl<B: Backend> NoisePredictor<B> for Denoiser<B> {
    fn predict_with(&self, ops: &Ops<B>, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        match self {
            Self::SimpleUnet(model) => model.forward_with(ops, x_t, t),
            Self::DdpmUnet(model) => model.forward_with(ops, x_t, t),
        }
    }

    fn image_channels(&self) -> usize {
        match self {
            Self::SimpleUnet(model) => model.image_channels(),
            Self::DdpmUnet(model) => model.image_channels(),
        }
    }

    fn size_multiple(&self) -> usize {
        match self {
            Self::SimpleUnet(model) => model.size_multiple(),
            Self::DdpmUnet(model) => model.size_multiple(),
        }
    }
}
