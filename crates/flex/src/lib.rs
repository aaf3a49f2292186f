//! Fast CPU kernels for DDPM's models on burn-flex, offered as `ddpm-ops` tables.
//!
//! burn-flex runs most operations a training step needs on one thread, convolves one image after
//! another, and walks strided views element by element. The kernels here are written for the
//! models' shapes and spread over rayon's threads:
//! - convolutions and transposed convolutions: per image a patch matrix (im2col) and one gemm,
//!   images in parallel, with their own backward pass (the weight gradient as one product per
//!   image instead of burn's convolution of swapped views); the wide 3×3 stride-1 layers by
//!   Winograd's F(4×4, 3×3) in all three passes (4× fewer multiplications);
//! - SimpleUnet's ReLU + BatchNorm: one pass forward, one backward;
//! - the paper U-Net's GroupNorm (+ SiLU): two passes each way, the SiLU's exponential
//!   vectorised;
//! - the paper U-Net's attention: batched products over strided views and a fused softmax,
//!   each way;
//! - dropout while training: one pass each way, the mask hashed from the index and a seed;
//! - skip concatenations: image by image, with a backward pass that hands each input a
//!   contiguous gradient;
//! - Adam: one pass per parameter, in place, burn's arithmetic to the bit;
//! - batch gathering: narrow deep layers as one matrix product over the batch, where that
//!   beats these kernels (`ddpm_ops::gather`, in burn's operations, so for any backend).
//!
//! [`FlexKernels`] says which of them a table uses; as a `ddpm_ops::KernelTables` it makes the
//! tables a training run or a sampler takes, in f32 (the kernels' only precision; bf16 is
//! refused while the convolution or attention kernels are on, rather than run by burn in their
//! place). Every kernel handles plain geometries and hands the others to burn.
//!
//! ```
//! use ddpm_flex::FlexKernels;
//!
//! let tables = FlexKernels::default().training();
//! assert!(tables.inner.adam.step.is_some());
//! ```

mod adam;
mod attention;
mod concat;
mod conv;
mod dropout;
mod exp;
mod group_norm;
mod kernels;
mod norm;
mod par_rows;
mod product;
mod tensor;
#[cfg(test)]
mod testing;

pub use kernels::FlexKernels;
pub use tensor::{Flex, FlexAutodiff};
