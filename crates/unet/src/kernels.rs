//! Kernels a binary registers for its backend at run time.
//!
//! This crate is generic over the backend and uses burn's operations. A binary that knows its
//! backend can register faster ones for it (the `ddpm` binary does for burn-flex: convolutions
//! parallel over the batch, with their own backward pass, and SimpleUnet's ReLU + BatchNorm as one
//! pass each way, and its skip concatenations with a parallel backward pass). SimpleUnet's plain
//! convolutions and transposed convolutions then call those instead of burn's, except where batch
//! gathering ([`set_batch_gathering`](crate::set_batch_gathering)) takes a layer; its ReLU +
//! BatchNorm pairs call the norm kernels, its skip connections the concatenation kernel.

use std::any::{Any, TypeId};
use std::sync::RwLock;

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor, backend::Backend};

/// A 2-D convolution with burn's signature (`burn::tensor::module::conv2d`).
pub type Conv2dFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>, ConvOptions<2>) -> Tensor<B, 4>;

/// A 2-D transposed convolution with burn's signature
/// (`burn::tensor::module::conv_transpose2d`).
pub type ConvTranspose2dFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>, ConvTransposeOptions<2>) -> Tensor<B, 4>;

/// Replacements for burn's convolutions on backend `B`. They are called only for plain layers:
/// one group, no dilation, symmetric padding, no output padding.
pub struct ConvKernels<B: Backend> {
    /// Replaces `Conv2d::forward`.
    pub conv2d: Conv2dFn<B>,
    /// Replaces `ConvTranspose2d::forward`.
    pub conv_transpose2d: ConvTranspose2dFn<B>,
}

/// A batch normalised with its own statistics, and those statistics.
#[derive(Debug)]
pub struct NormalizedBatch<B: Backend> {
    /// `[N, C, H, W]`, as the input.
    pub output: Tensor<B, 4>,
    /// Per channel `[C]`: the mean over the batch and the pixels.
    pub mean: Tensor<B, 1>,
    /// Per channel `[C]`: the biased variance (divided by N·H·W), the one that normalised.
    pub variance: Tensor<B, 1>,
}

/// Training-mode ReLU + BatchNorm: `(x, gamma [C], offset [N, C], epsilon)` →
/// `gamma[c]·(r − mean[c]) / sqrt(variance[c] + epsilon) + offset[n, c]` with `r = relu(x)` and
/// the statistics of `r` over the batch and the pixels; differentiable in `x`, `gamma` and
/// `offset` on an autodiff backend.
pub type ReluBatchNormFn<B> =
    fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 2>, f64) -> NormalizedBatch<B>;

/// Inference-mode ReLU + BatchNorm, its statistics folded into the affine step:
/// `(x, scale [C], offset [N, C])` → `relu(x)·scale[c] + offset[n, c]`.
pub type ReluScaleShiftFn<B> = fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 2>) -> Tensor<B, 4>;

/// Replacements for SimpleUnet's ReLU followed by its BatchNorm on backend `B`: one kernel for
/// training (batch statistics), one for inference (running statistics). Either may be absent:
/// an autodiff backend only ever trains, its inner backend only infers. Called for f32 activations
/// only.
pub struct NormKernels<B: Backend> {
    /// Called when `B` tracks gradients.
    pub training: Option<ReluBatchNormFn<B>>,
    /// Called otherwise.
    pub inference: Option<ReluScaleShiftFn<B>>,
}

/// Concatenation of two batches `[N, C₁, H, W]` and `[N, C₂, H, W]` along the channels →
/// `[N, C₁ + C₂, H, W]` (`Tensor::cat(vec![a, b], 1)`), differentiable on an autodiff backend.
pub type ConcatChannelsFn<B> = fn(Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>;

// Function pointers: copyable whatever `B` is (a derive would ask `B: Copy`).
impl<B: Backend> Clone for ConvKernels<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for ConvKernels<B> {}

impl<B: Backend> Clone for NormKernels<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for NormKernels<B> {}

/// One entry per kernel set and backend (the set's type names both); a handful at most, so a
/// list.
type Registry = Vec<(TypeId, Box<dyn Any + Send + Sync>)>;

static REGISTRY: RwLock<Registry> = RwLock::new(Vec::new());

/// Registers `kernels` process-wide under their type (`None` removes them): the mechanism behind
/// [`register_conv_kernels`] and [`register_norm_kernels`], open to other crates' kernel sets (a
/// type generic over the backend, or a function pointer type naming it, keys one per backend).
pub fn register_kernels<K: Copy + Send + Sync + 'static>(kernels: Option<K>) {
    let mut registry = REGISTRY
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry.retain(|(set, _)| *set != TypeId::of::<K>());
    if let Some(kernels) = kernels {
        registry.push((TypeId::of::<K>(), Box::new(kernels)));
    }
}

/// The kernels of type `K` registered with [`register_kernels`], if any.
pub fn registered_kernels<K: Copy + 'static>() -> Option<K> {
    let registry = REGISTRY
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry
        .iter()
        .find(|(set, _)| *set == TypeId::of::<K>())
        .and_then(|(_, kernels)| kernels.downcast_ref::<K>().copied())
}

/// Makes SimpleUnet use `kernels` on backend `B` (process-wide), or burn's convolutions again
/// with `None`.
pub fn register_conv_kernels<B: Backend>(kernels: Option<ConvKernels<B>>) {
    register_kernels(kernels);
}

/// The convolution kernels registered for backend `B`, if any.
pub fn conv_kernels<B: Backend>() -> Option<ConvKernels<B>> {
    registered_kernels()
}

/// Makes SimpleUnet's ReLU + BatchNorm pairs use `kernels` on backend `B` (process-wide), or
/// burn's operations again with `None`.
pub fn register_norm_kernels<B: Backend>(kernels: Option<NormKernels<B>>) {
    register_kernels(kernels);
}

/// The norm kernels registered for backend `B`, if any.
pub fn norm_kernels<B: Backend>() -> Option<NormKernels<B>> {
    registered_kernels()
}

/// Makes SimpleUnet join its skip connections with `kernel` on backend `B` (process-wide), or
/// with burn's `cat` again with `None`.
pub fn register_concat_kernel<B: Backend>(kernel: Option<ConcatChannelsFn<B>>) {
    register_kernels(kernel);
}

/// `Tensor::cat(vec![a, b], 1)` for two batches, by the kernel registered for `B` if there is
/// one (it is called for f32 tensors only).
pub(crate) fn concat_channels<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 4> {
    let f32s = a.dtype() == DType::F32 && b.dtype() == DType::F32;
    match registered_kernels::<ConcatChannelsFn<B>>() {
        Some(kernel) if f32s => kernel(a, b),
        _ => Tensor::cat(vec![a, b], 1),
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::{Distribution, module};
    use burn_ndarray::NdArray;

    use super::*;
    use crate::conv::conv2d;
    use crate::conv_transpose::conv_transpose2d;

    // A backend type no other test uses: the registry is process-wide.
    type B = NdArray<f64>;

    /// burn's convolutions plus one, so that the output tells which ran.
    fn marked_kernels() -> ConvKernels<B> {
        ConvKernels {
            conv2d: |x, weight, bias, options| module::conv2d(x, weight, bias, options) + 1.0,
            conv_transpose2d: |x, weight, bias, options| {
                module::conv_transpose2d(x, weight, bias, options) + 1.0
            },
        }
    }

    #[test]
    fn plain_layers_run_on_the_registered_kernels() {
        let device = Default::default();
        let padding = PaddingConfig2d::Explicit(1, 1, 1, 1);
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(padding)
            .init::<B>(&device);
        let uneven = PaddingConfig2d::Explicit(0, 1, 2, 1);
        let uneven = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(uneven)
            .init::<B>(&device);
        let up = ConvTranspose2dConfig::new([3, 4], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init::<B>(&device);
        let x = Tensor::<B, 4>::random([2, 3, 8, 8], Distribution::Default, &device);
        let difference = |a: Tensor<B, 4>, b: Tensor<B, 4>| (a - b).abs().max().into_scalar();

        register_conv_kernels(Some(marked_kernels()));
        assert!(conv_kernels::<B>().is_some());
        let ours = conv2d(&conv, x.clone());
        assert!(difference(ours, conv.forward(x.clone()) + 1.0) < 1e-12);
        let ours = conv_transpose2d(&up, x.clone());
        assert!(difference(ours, up.forward(x.clone()) + 1.0) < 1e-12);
        // burn's options have one padding per axis: uneven padding stays with burn.
        assert!(difference(conv2d(&uneven, x.clone()), uneven.forward(x.clone())) < 1e-12);

        register_conv_kernels::<B>(None);
        assert!(conv_kernels::<B>().is_none());
        assert!(difference(conv2d(&conv, x.clone()), conv.forward(x.clone())) < 1e-12);
        assert!(difference(conv_transpose2d(&up, x.clone()), up.forward(x)) < 1e-12);
    }

    #[test]
    fn skip_connections_join_through_the_registered_kernel() {
        // f32 (the kernel is called for f32 only), and a backend type no other test joins on.
        type C = NdArray<f32, i32>;
        let device = Default::default();
        let a = Tensor::<C, 4>::random([2, 3, 4, 4], Distribution::Default, &device);
        let b = Tensor::<C, 4>::random([2, 5, 4, 4], Distribution::Default, &device);
        let cat = Tensor::cat(vec![a.clone(), b.clone()], 1);
        let difference = |a: Tensor<C, 4>, b: Tensor<C, 4>| (a - b).abs().max().into_scalar();

        let marked: ConcatChannelsFn<C> = |a, b| Tensor::cat(vec![a, b], 1) + 1.0;
        register_concat_kernel(Some(marked));
        assert_eq!(
            difference(concat_channels(a.clone(), b.clone()), cat.clone() + 1.0),
            0.0
        );
        register_concat_kernel::<C>(None);
        assert_eq!(difference(concat_channels(a, b), cat), 0.0);
    }
}
