//! The seam between DDPM's models and fast kernels.
//!
//! The models (`ddpm-unet`) and the optimiser (`ddpm-trainer`) are generic over burn's backend and
//! compute with burn's operations. A few operations dominate their time, and a kernel crate that
//! knows a backend can do them faster (`ddpm-flex` for burn-flex on the CPU). [`Ops`] is the
//! table of those operations for one backend type: plain function pointers with burn's
//! signatures where burn has the operation, [`Ops::burn`] (the default) filling every entry with
//! burn's own. A kernel crate builds a table for its backend; the binary that chose the backend
//! hands the table to the trainer or the sampling pipeline, which pass it to the model on every
//! call. Nothing is registered anywhere: the table travels with the work, typed by its backend.
//!
//! A training run needs two tables ([`TrainingOps`]): the autodiff backend's for the training
//! passes, and its inner backend's for sampling with the EMA weights and for the optimiser, which
//! steps the inner backend's tensors.
//!
//! Entries:
//! - [`conv2d`](Ops::conv2d), [`conv_transpose2d`](Ops::conv_transpose2d): burn's signatures;
//! - [`relu_batch_norm`](Ops::relu_batch_norm) (training) and
//!   [`relu_scale_shift`](Ops::relu_scale_shift) (inference): SimpleUnet's ReLU + BatchNorm;
//! - [`concat_channels`](Ops::concat_channels): skip connections;
//! - [`group_norm`](Ops::group_norm) (with an optional SiLU after it) and
//!   [`attention`](Ops::attention) and [`dropout`](Ops::dropout): the DDPM paper's U-Net;
//! - [`adam`](Ops::adam): how Adam steps this backend's parameters.
//!
//! [`Ops::with_heavy`] sets a table's heavy entries (convolutions and attention) from a kernel
//! set named by type, in f32 or in bf16 with f32 everywhere else: mixed precision without
//! autocast, on the table's own kernels. A kernel crate offers its tables through
//! [`KernelTables`]; [`BurnTables`] are burn's operations on any backend, optionally with the
//! narrow deep convolutions gathered over the batch ([`gather`], in burn's operations, so for
//! any backend).

mod adam;
mod attention;
mod conv;
mod dropout;
pub mod gather;
mod norm;
mod precision;
mod tables;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, module};

pub use adam::{AdamConstants, AdamOps, AdamStepFn};
pub use attention::{AttentionFn, attention};
pub use conv::{Conv2dFn, ConvTranspose2dFn};
pub use dropout::{DropoutFn, dropout};
pub use norm::{
    GroupNormFn, GroupNormOptions, NormalizedBatch, ReluBatchNormFn, ReluScaleShiftFn, group_norm,
    relu_batch_norm, relu_scale_shift,
};
pub use precision::{BurnHeavy, GatheredHeavy, HeavyKernels, Precision, bf16};
pub use tables::{BurnTables, KernelTables, TableError};

/// Concatenation of two batches `[N, C₁, H, W]` and `[N, C₂, H, W]` along the channels →
/// `[N, C₁ + C₂, H, W]` (`Tensor::cat(vec![a, b], 1)`), differentiable on an autodiff backend.
pub type ConcatChannelsFn<B> = fn(Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>;

/// burn's `Tensor::cat(vec![a, b], 1)`.
pub fn concat_channels<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 4> {
    Tensor::cat(vec![a, b], 1)
}

/// The operations a model or the optimiser may have accelerated on backend `B`.
///
/// Every entry computes what burn's operation computes (up to summation order); a kernel may
/// handle only some inputs (say f32 and plain geometries) and hand the rest to burn itself.
pub struct Ops<B: Backend> {
    /// A 2-D convolution (`burn::tensor::module::conv2d`).
    pub conv2d: Conv2dFn<B>,
    /// A 2-D transposed convolution (`burn::tensor::module::conv_transpose2d`).
    pub conv_transpose2d: ConvTranspose2dFn<B>,
    /// Training-mode ReLU + BatchNorm with the batch's statistics ([`relu_batch_norm`]).
    pub relu_batch_norm: ReluBatchNormFn<B>,
    /// Inference-mode ReLU + BatchNorm, the statistics folded in ([`relu_scale_shift`]).
    pub relu_scale_shift: ReluScaleShiftFn<B>,
    /// Two batches joined along the channels ([`concat_channels`]).
    pub concat_channels: ConcatChannelsFn<B>,
    /// GroupNorm, optionally followed by SiLU ([`group_norm`]).
    pub group_norm: GroupNormFn<B>,
    /// Single-head self-attention over the pixels ([`attention`]).
    pub attention: AttentionFn<B>,
    /// Dropout while training ([`dropout`]).
    pub dropout: DropoutFn<B>,
    /// How Adam steps this backend's parameters.
    pub adam: AdamOps<B>,
    /// The number format the heavy entries compute in ([`Ops::with_heavy`]).
    pub precision: Precision,
}

impl<B: Backend> Ops<B> {
    /// burn's operations for every entry, and burn's Adam stepping one parameter after another.
    pub fn burn() -> Self {
        Self {
            conv2d: module::conv2d::<B>,
            conv_transpose2d: module::conv_transpose2d::<B>,
            relu_batch_norm: relu_batch_norm::<B>,
            relu_scale_shift: relu_scale_shift::<B>,
            concat_channels: concat_channels::<B>,
            group_norm: group_norm::<B>,
            attention: attention::<B>,
            dropout: dropout::<B>,
            adam: AdamOps::default(),
            precision: Precision::F32,
        }
    }

    /// This table with its convolutions replaced by burn's, gathered over the batch where that
    /// pays ([`GatheredHeavy`]), in the table's precision.
    pub fn with_gathering(self) -> Self {
        let precision = self.precision;
        self.with_heavy::<GatheredHeavy>(precision)
    }
}

impl<B: Backend> Default for Ops<B> {
    fn default() -> Self {
        Self::burn()
    }
}

// Function pointers: copyable whatever `B` is (a derive would ask `B: Copy`).
impl<B: Backend> Clone for Ops<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Ops<B> {}

impl<B: Backend> std::fmt::Debug for Ops<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("adam", &self.adam)
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

/// The two tables a training run uses: `training` for the model's passes on the autodiff backend
/// `B`, `inner` for sampling with the EMA weights and for the optimiser's steps, both on `B`'s
/// inner backend.
pub struct TrainingOps<B: AutodiffBackend> {
    /// The autodiff backend's table.
    pub training: Ops<B>,
    /// The inner backend's table.
    pub inner: Ops<B::InnerBackend>,
}

impl<B: AutodiffBackend> TrainingOps<B> {
    /// burn's operations on both backends.
    pub fn burn() -> Self {
        Self {
            training: Ops::burn(),
            inner: Ops::burn(),
        }
    }
}

impl<B: AutodiffBackend> Default for TrainingOps<B> {
    fn default() -> Self {
        Self::burn()
    }
}

impl<B: AutodiffBackend> Clone for TrainingOps<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: AutodiffBackend> Copy for TrainingOps<B> {}

impl<B: AutodiffBackend> std::fmt::Debug for TrainingOps<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingOps")
            .field("training", &self.training)
            .field("inner", &self.inner)
            .finish()
    }
}
