//! Layers on small feature maps as one matrix product over the whole batch ("batch gathering"),
//! in burn's operations, so for any backend.
//!
//! A CPU backend (burn-flex, burn-ndarray, and this crate's own kernels) convolves one image at a
//! time. When a feature map has shrunk to a few pixels and the layer is wide, each image's
//! product is thin, and the weights (up to 64 MiB in the seed's deepest block) are packed and
//! streamed once per image. Gathering the patches of the whole batch first makes the forward
//! pass and both gradients one product each over `batch × pixels` columns. It pays only for
//! narrow, wide layers, hence thresholds on output channels per output pixel; a backend whose
//! convolutions already span the batch (a GPU's implicit GEMM) only gets the patches' extra
//! memory traffic, so its tables do not gather.

pub mod conv;
pub mod conv_transpose;

/// What a layer that does not gather runs on: the threshold depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rival {
    /// burn's convolution.
    Burn,
    /// This crate's batch-parallel kernels.
    Kernel,
}

#[cfg(test)]
pub(crate) mod testing;
