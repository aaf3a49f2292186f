//! The concrete backends the binary can run on: the one place that names them, and the choice
//! between them (CUDA when a device is usable, else the fastest CPU backend).

use anyhow::bail;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use ddpm_flex::FlexKernels;
use ddpm_ops::{BurnTables, KernelTables, Ops, Precision, TrainingOps};
use serde::Serialize;

/// A backend choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// burn-cuda on an NVIDIA GPU (needs the `cuda` feature, on by default, and a driver).
    Cuda,
    /// burn's `flex` CPU backend (SIMD + threads): the fastest CPU backend measured here.
    Flex,
    /// burn-ndarray: the design's reference CPU backend (and the tests').
    Ndarray,
}

impl std::fmt::Display for BackendChoice {
    /// The name `--backend` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no backend is hidden");
        f.write_str(value.get_name())
    }
}

/// `--backend`, `--device` and the kernel switches, shared by the commands that compute.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Backend (default: cuda when a CUDA device is usable, else flex).
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// The GPU to use with the cuda backend.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Narrow deep layers as batch-wide products (default: on for the CPU backends, off for cuda).
    #[arg(long, value_parser = BoolishValueParser::new())]
    batch_gathering: Option<bool>,
    /// Convolutions and skip concatenations by ddpm-flex's kernels (flex; default on).
    #[arg(long, value_parser = BoolishValueParser::new())]
    own_conv: Option<bool>,
    /// ReLU + BatchNorm and GroupNorm + SiLU by ddpm-flex's kernels (flex; default on).
    #[arg(long, value_parser = BoolishValueParser::new())]
    own_norm: Option<bool>,
    /// Attention by ddpm-flex's kernels (flex; default on).
    #[arg(long, value_parser = BoolishValueParser::new())]
    own_attention: Option<bool>,
    /// Dropout by ddpm-flex's one-pass kernel, its own draws from burn's seed (flex; default on).
    #[arg(long, value_parser = BoolishValueParser::new())]
    own_dropout: Option<bool>,
    /// Adam's step by ddpm-flex's one-pass kernel, burn's values to the bit (flex; default on).
    #[arg(long, value_parser = BoolishValueParser::new())]
    own_adam: Option<bool>,
    /// The GPU's convolutions and products (cuda; default cudnn).
    #[arg(long)]
    gpu_kernels: Option<GpuKernelChoice>,
}

impl BackendArgs {
    /// The backend to run on: the one asked for (checking that CUDA is usable), or with none
    /// asked for, CUDA when a device is usable and flex otherwise. Prints the choice on stderr.
    pub fn select(&self) -> anyhow::Result<Selected> {
        select(self.backend, self.device)
    }

    /// The kernels the tables of `selected` use, as asked, else the backend's defaults. On
    /// cuda, cuDNN and cuBLAS that cannot be loaded give fixed kernels and a line saying so.
    pub fn kernels(&self, selected: Selected) -> Kernels {
        let flex = selected.choice == BackendChoice::Flex;
        let own = |asked: Option<bool>| flex && asked != Some(false);
        let gpu_kernels = (selected.choice == BackendChoice::Cuda)
            .then(|| usable(self.gpu_kernels.unwrap_or(GpuKernelChoice::Cudnn)));
        Kernels {
            batch_gathering: self.batch_gathering.unwrap_or(selected.on_cpu()),
            own_conv: own(self.own_conv),
            own_norm: own(self.own_norm),
            own_attention: own(self.own_attention),
            own_dropout: own(self.own_dropout),
            own_adam: own(self.own_adam),
            gpu_kernels,
        }
        .noted()
    }
}

/// `--gpu-kernels`: what computes the convolutions and products on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuKernelChoice {
    /// cuDNN and cuBLAS (burn-cubecl's fixed kernels where they cannot be loaded).
    Cudnn,
    /// burn-cubecl's kernels at a fixed strategy: nothing tuned at run time.
    Fixed,
    /// burn's operations, autotuned per shape at run time (minutes at first).
    Tuned,
}

/// Which kernels a backend's tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Kernels {
    /// Narrow deep layers as batch-wide matrix products.
    pub batch_gathering: bool,
    /// ddpm-flex's convolutions and skip concatenations (flex only).
    pub own_conv: bool,
    /// ddpm-flex's ReLU + BatchNorm and GroupNorm + SiLU (flex only).
    pub own_norm: bool,
    /// ddpm-flex's attention (flex only).
    pub own_attention: bool,
    /// ddpm-flex's dropout (flex only).
    pub own_dropout: bool,
    /// ddpm-flex's one-pass Adam step (flex only).
    pub own_adam: bool,
    /// The GPU's convolutions and products (cuda only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_kernels: Option<GpuKernelChoice>,
}

impl Kernels {
    /// Says on stderr when the GPU's kernels will be tuned at run time.
    fn noted(self) -> Self {
        if self.gpu_kernels == Some(GpuKernelChoice::Tuned) {
            eprintln!(
                "note: --gpu-kernels tuned compiles and benchmarks kernels for each new shape, \
                 which can take minutes; later runs read them from the cache"
            );
        }
        self
    }
}

/// The operation tables of a backend the binary runs on, made by its kernel crate.
pub trait Tables: Backend {
    /// The kernel crate's switches for this backend.
    type Kernels: KernelTables<Backend = Self, Autodiff = Autodiff<Self>>;

    /// The switches `kernels` asks for.
    fn kernels(kernels: &Kernels) -> Self::Kernels;

    /// For sampling, the heavy entries in `precision`.
    fn inference(kernels: &Kernels, precision: Precision) -> anyhow::Result<Ops<Self>> {
        Ok(Self::kernels(kernels).inference(precision)?)
    }

    /// For training on burn's autodiff decorator over it, the heavy entries in `precision`.
    fn training(
        kernels: &Kernels,
        precision: Precision,
    ) -> anyhow::Result<TrainingOps<Autodiff<Self>>> {
        Ok(Self::kernels(kernels).training(precision)?)
    }
}

impl Tables for Flex {
    type Kernels = FlexKernels;

    fn kernels(kernels: &Kernels) -> FlexKernels {
        FlexKernels {
            conv: kernels.own_conv,
            norm: kernels.own_norm,
            attention: kernels.own_attention,
            dropout: kernels.own_dropout,
            adam: kernels.own_adam,
            gathering: kernels.batch_gathering,
            winograd: kernels.own_conv,
        }
    }
}

impl Tables for Ndarray {
    type Kernels = BurnTables<Self>;

    fn kernels(kernels: &Kernels) -> BurnTables<Self> {
        BurnTables::new(kernels.batch_gathering, true)
    }
}

#[cfg(feature = "cuda")]
impl Tables for Cuda {
    type Kernels = ddpm_cuda::CudaKernels;

    fn kernels(kernels: &Kernels) -> ddpm_cuda::CudaKernels {
        use ddpm_cuda::GpuKernels;
        ddpm_cuda::CudaKernels {
            kernels: match kernels.gpu_kernels {
                Some(GpuKernelChoice::Fixed) => GpuKernels::Fixed,
                Some(GpuKernelChoice::Tuned) => GpuKernels::Tuned,
                Some(GpuKernelChoice::Cudnn) | None => GpuKernels::Cudnn,
            },
            gathering: kernels.batch_gathering,
        }
    }
}

/// burn-flex.
pub type Flex = ddpm_flex::Flex;
/// burn-ndarray.
pub type Ndarray = burn_ndarray::NdArray<f32>;
/// burn-cuda without fusion (the kernels' library calls need plain tensors).
#[cfg(feature = "cuda")]
pub type Cuda = ddpm_cuda::Gpu;

/// A backend and, for CUDA, the GPU's index.
#[derive(Debug, Clone, Copy)]
pub struct Selected {
    /// The backend.
    pub choice: BackendChoice,
    /// The CUDA device index (unused on the CPU).
    pub device: usize,
}

impl Selected {
    /// Whether it computes on the CPU (flex or ndarray).
    pub fn on_cpu(&self) -> bool {
        self.choice != BackendChoice::Cuda
    }
}

impl std::fmt::Display for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.choice {
            BackendChoice::Cuda => write!(f, "cuda (GPU {})", self.device),
            cpu => write!(f, "{cpu} (CPU)"),
        }
    }
}

/// See [`BackendArgs::select`].
fn select(requested: Option<BackendChoice>, device: usize) -> anyhow::Result<Selected> {
    let choice = match requested {
        Some(BackendChoice::Cuda) => {
            if let Err(reason) = probe_cuda(device) {
                bail!("the cuda backend cannot run: {reason}");
            }
            BackendChoice::Cuda
        }
        Some(cpu) => cpu,
        None => match probe_cuda(device) {
            Ok(()) => BackendChoice::Cuda,
            Err(reason) => {
                eprintln!("no usable CUDA device ({reason}); using the CPU");
                BackendChoice::Flex
            }
        },
    };
    let selected = Selected { choice, device };
    eprintln!("backend: {selected}");
    Ok(selected)
}

/// `choice`, or fixed kernels with a line saying why when cuDNN or cuBLAS cannot be loaded.
#[cfg(feature = "cuda")]
fn usable(choice: GpuKernelChoice) -> GpuKernelChoice {
    if choice != GpuKernelChoice::Cudnn {
        return choice;
    }
    match ddpm_cuda::GpuKernels::Cudnn.usable() {
        (_, Some(note)) => {
            eprintln!("note: {note}");
            GpuKernelChoice::Fixed
        }
        (_, None) => choice,
    }
}

#[cfg(not(feature = "cuda"))]
fn usable(choice: GpuKernelChoice) -> GpuKernelChoice {
    choice
}

/// Whether GPU `index` can run a kernel, with cubecl's caches in the user cache folder first
/// (cubecl fixes its configuration at the first GPU work).
#[cfg(feature = "cuda")]
fn probe_cuda(index: usize) -> Result<(), String> {
    let root = ddpm_cuda::cache_dir();
    let caches = ddpm_cuda::configure_caches(&root);
    ddpm_cuda::probe(index)?;
    match caches {
        Ok(_) => eprintln!("GPU kernel caches: {}", root.display()),
        Err(reason) => eprintln!("warning: {reason}"),
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda(_index: usize) -> Result<(), String> {
    Err("this ddpm was built without the `cuda` feature".into())
}

/// Runs `$body` with `$B` bound to the selected backend type and `$device` to its device.
#[macro_export]
macro_rules! with_backend {
    ($selected:expr, $B:ident, $device:ident => $body:expr) => {{
        let selected: $crate::backend::Selected = $selected;
        match selected.choice {
            $crate::backend::BackendChoice::Cuda => {
                #[cfg(feature = "cuda")]
                {
                    type $B = $crate::backend::Cuda;
                    let $device = burn_cuda::CudaDevice::new(selected.device);
                    $body
                }
                #[cfg(not(feature = "cuda"))]
                {
                    unreachable!("select() refuses cuda without the feature")
                }
            }
            $crate::backend::BackendChoice::Flex => {
                type $B = $crate::backend::Flex;
                let $device = Default::default();
                $body
            }
            $crate::backend::BackendChoice::Ndarray => {
                type $B = $crate::backend::Ndarray;
                let $device = Default::default();
                $body
            }
        }
    }};
}
