//! Noise predictors for DDPM, generic over the Burn backend: the seed's `SimpleUnet` (with import
//! of its PyTorch checkpoints) and the U-Net of Ho et al. (2020). Not written yet; see the issue
//! "The `unet` crate".
