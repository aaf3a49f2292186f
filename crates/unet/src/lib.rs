//! Noise predictors for DDPM, generic over the Burn backend.
//!
//! - [`SimpleUnet`]: the seed's model layer for layer (62,438,883 parameters at its defaults), with
//!   import of the seed's PyTorch checkpoints ([`SimpleUnet::load_seed_checkpoint`]) and
//!   safetensors export/import in the same key layout.
//! - [`DdpmUnet`]: the U-Net of Ho et al. (2020) for CIFAR-10: residual blocks with GroupNorm and
//!   SiLU, self-attention at 16×16, learned down- and up-sampling.
//!
//! Both implement [`NoisePredictor`]: given x_t `[N, C, H, W]` and integer timesteps `[N]`, they
//! return the model output `[N, C, H, W]`.
//!
//! Every model computes through a backend's operations table ([`ddpm_ops::Ops`]): `forward` uses
//! burn's own operations, `forward_with` (and [`NoisePredictor::predict_with`]) those of a table
//! a kernel crate made for the backend (`ddpm-flex` for burn-flex). The models' modules are
//! burn's, so records and weights do not depend on the table.

mod batch_norm;
mod denoiser;
mod embedding;
mod error;
mod layers;
mod paper;
mod params;
mod predictor;
mod simple;
mod weights;

pub use denoiser::{Denoiser, DenoiserConfig};
pub use embedding::sinusoidal_embedding;
pub use error::{UnetError, WeightsError};
pub use paper::{DdpmUnet, DdpmUnetConfig};
pub use params::{available_memory, lazy_tensor_elements, trainable_params};
pub use predictor::NoisePredictor;
pub use simple::{SimpleUnet, SimpleUnetConfig};
pub use weights::{KeyLayout, load_pytorch};
