//! DDPM's kernels for burn-cuda, and what DDPM needs of it beyond its operations.
//!
//! burn-cuda compiles and benchmarks candidate kernels for every convolution, product and
//! reduction shape at run time (cubecl's autotune): minutes before a first training step. This
//! crate's tables ([`CudaKernels`], a `ddpm_ops::KernelTables`) take the heavy operations off
//! that path, by one of three [`GpuKernels`]:
//! - [`GpuKernels::Cudnn`]: the convolutions (forward, both gradients, transposed) by cuDNN
//!   with its heuristics' algorithm, the attention's products by cuBLAS, on burn-cuda's own
//!   device memory ([`device`](crate::device) says how the calls are ordered with cubecl's);
//! - [`GpuKernels::Fixed`]: burn-cubecl's kernels at a fixed strategy (an implicit GEMM on
//!   tensor cores, else direct): one compilation per shape, nothing benchmarked;
//! - [`GpuKernels::Tuned`]: burn's operations, autotuned as burn-cuda does by default.
//!
//! Each runs in f32 (TF32 tensor cores allowed, PyTorch's default) or bf16 with f32
//! accumulation (`ddpm_ops::Precision`). The backend is burn-cuda's without fusion ([`Gpu`]):
//! a library call needs the memory of a plain tensor.
//!
//! Also: [`probe`] (whether a GPU can run a kernel, as an error message instead of burn-cuda's
//! panic when the driver is missing), [`libraries`] (whether cuDNN and cuBLAS load), and
//! [`configure_caches`] (cubecl's autotune results and compiled kernels in one user cache
//! folder, [`cache_dir`]).

mod caches;
mod conv;
mod device;
mod library;
mod probe;
mod product;
mod tracked;

pub use caches::{CacheDirs, cache_dir, configure_caches};
pub use library::libraries;
pub use probe::probe;

use burn::backend::Autodiff;
use burn::tensor::Tensor;
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::cuda::CudaRuntime;
use ddpm_ops::{
    BurnHeavy, GatheredHeavy, HeavyKernels, KernelTables, Ops, Precision, TableError, TrainingOps,
};

use crate::conv::{ConvKernels, OwnConv, cudnn::CudnnConv, fixed::FixedConv};
use crate::product::{Cublas, FixedProduct, OwnProduct, ProductKernels};

/// burn-cuda without fusion, f32 floats: the backend of this crate's inference tables and the
/// inner backend of its training tables.
pub type Gpu = CubeBackend<CudaRuntime, f32, i32, u8>;

/// burn's autodiff decorator over [`Gpu`]: the backend of the training tables.
pub type GpuAutodiff = Autodiff<Gpu>;

/// The GPU's device type.
pub type GpuDevice = burn_cuda::CudaDevice;

/// Which kernels compute the convolutions and the attention's products on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuKernels {
    /// cuDNN and cuBLAS, as PyTorch uses them.
    #[default]
    Cudnn,
    /// burn-cubecl's kernels at a fixed strategy.
    Fixed,
    /// burn's operations, autotuned per shape at run time.
    Tuned,
}

impl GpuKernels {
    /// These kernels if they can run here; `Fixed` with the reason when cuDNN or cuBLAS cannot
    /// be loaded.
    pub fn usable(self) -> (Self, Option<String>) {
        match (self, libraries()) {
            (Self::Cudnn, Err(reason)) => (
                Self::Fixed,
                Some(format!(
                    "{reason}; using burn-cubecl's fixed kernels (--gpu-kernels fixed)"
                )),
            ),
            (kernels, _) => (kernels, None),
        }
    }
}

impl std::fmt::Display for GpuKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cudnn => "cudnn",
            Self::Fixed => "fixed",
            Self::Tuned => "tuned",
        })
    }
}

/// A heavy-kernel set of a convolution library `C` and a product library `P`.
struct Libraries<C, P>(std::marker::PhantomData<(C, P)>);

impl<B, C, P> HeavyKernels<B> for Libraries<C, P>
where
    B: OwnConv + OwnProduct,
    C: ConvKernels,
    P: ProductKernels,
{
    fn conv2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: PaddedConvOptions<2>,
    ) -> Tensor<B, 4> {
        conv::conv2d::<B, C>(x, weight, bias, options)
    }

    fn conv_transpose2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: ConvTransposeOptions<2>,
    ) -> Tensor<B, 4> {
        conv::conv_transpose2d::<B, C>(x, weight, bias, options)
    }

    fn attention(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        product::attention::<B, P>(q, k, v)
    }

    fn attention_bf16(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        product::attention_bf16::<B, P>(q, k, v)
    }
}

type CudnnKernels = Libraries<CudnnConv, Cublas>;
type FixedKernels = Libraries<FixedConv, FixedProduct>;

/// The switches of the GPU tables: which kernels, and whether narrow deep layers are gathered
/// over the batch (burn's operations only: the other kernels span the batch already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaKernels {
    /// The convolutions' and products' kernels.
    pub kernels: GpuKernels,
    /// Batch gathering (`ddpm_ops::gather`), with [`GpuKernels::Tuned`] only.
    pub gathering: bool,
}

impl CudaKernels {
    /// One table of either backend.
    fn table<B>(&self, precision: Precision) -> Result<Ops<B>, TableError>
    where
        B: OwnConv + OwnProduct,
    {
        let ops = Ops::<B>::burn();
        Ok(match (self.kernels, self.gathering) {
            (GpuKernels::Tuned, true) => ops.with_heavy::<GatheredHeavy>(precision),
            (GpuKernels::Tuned, false) => ops.with_heavy::<BurnHeavy>(precision),
            (_, true) => {
                return Err(TableError::Conflict(
                    "batch gathering composes burn's operations: it goes with --gpu-kernels \
                     tuned only",
                ));
            }
            (GpuKernels::Cudnn, false) => ops.with_heavy::<CudnnKernels>(precision),
            (GpuKernels::Fixed, false) => ops.with_heavy::<FixedKernels>(precision),
        })
    }
}

impl KernelTables for CudaKernels {
    type Backend = Gpu;
    type Autodiff = GpuAutodiff;

    fn inference(&self, precision: Precision) -> Result<Ops<Gpu>, TableError> {
        self.table(precision)
    }

    fn training(&self, precision: Precision) -> Result<TrainingOps<GpuAutodiff>, TableError> {
        Ok(TrainingOps {
            training: self.table(precision)?,
            inner: self.table(precision)?,
        })
    }
}
