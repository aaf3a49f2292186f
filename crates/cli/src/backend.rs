//! The concrete backends the binary can run on: the one place that names them, and the choice
//! between them (CUDA when a device is usable, else the fastest CPU backend).

use anyhow::bail;
use clap::{Args, ValueEnum};

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

/// `--backend` and `--device`, shared by the commands that compute.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Backend (default: cuda when a CUDA device is usable, else flex).
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// The GPU to use with the cuda backend.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// SimpleUnet's narrow deep layers as batch-wide matrix products (default: on for the CPU
    /// backends, whose convolutions go one image at a time; off for cuda).
    #[arg(long)]
    batch_gathering: Option<Toggle>,
    /// The models' convolutions (and SimpleUnet's skip concatenations) on flex by this project's
    /// batch-parallel kernels, with their own backward pass (default: on; off: burn-flex's
    /// operations). Only flex has them.
    #[arg(long)]
    own_conv: Option<Toggle>,
    /// SimpleUnet's ReLU + BatchNorm pairs on flex by this project's one-pass kernels (default:
    /// on; off: burn's operations). Only flex has them.
    #[arg(long)]
    own_norm: Option<Toggle>,
    /// Adam's step on flex in one parallel pass per parameter, the same values as burn's `Adam`
    /// to the bit (default: on; off: burn's operations). Only flex has it.
    #[arg(long)]
    own_adam: Option<Toggle>,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

impl BackendArgs {
    /// The backend to run on (see [`select`]), with SimpleUnet's batch gathering and (on flex)
    /// convolution, norm and Adam kernels set for it.
    pub fn select(&self) -> anyhow::Result<Selected> {
        let selected = select(self.backend, self.device)?;
        let gathering = self
            .batch_gathering
            .map_or(selected.on_cpu(), |toggle| toggle == Toggle::On);
        ddpm_unet::set_batch_gathering(gathering);
        let own_conv = self.own_conv != Some(Toggle::Off);
        let flex = selected.choice == BackendChoice::Flex;
        crate::flex_conv::register(flex && own_conv);
        crate::flex_norm::register(flex && self.own_norm != Some(Toggle::Off));
        crate::flex_adam::register(flex && self.own_adam != Some(Toggle::Off));
        Ok(selected)
    }
}

/// burn-flex.
pub type Flex = burn_flex::Flex<f32>;
/// burn-ndarray.
pub type Ndarray = burn_ndarray::NdArray<f32>;
/// burn-cuda (with kernel fusion and autotuning).
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda<f32>;

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

/// Picks the backend: the one asked for (checking that CUDA is usable), or with none asked for,
/// CUDA when a device is usable and flex otherwise. Prints the choice on stderr.
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
    if choice == BackendChoice::Cuda {
        eprintln!(
            "note: a first run on a GPU compiles and tunes its kernels, which can take minutes; \
             the tuning is cached for later runs"
        );
    }
    Ok(selected)
}

/// Whether GPU `index` can run a kernel. burn-cuda loads the driver at run time and panics when
/// it is missing, so the probe catches that panic (silencing the default hook's report).
#[cfg(feature = "cuda")]
fn probe_cuda(index: usize) -> Result<(), String> {
    use burn::tensor::Tensor;

    // Without a driver library burn-cuda panics on a worker thread; look for it first.
    let driver_found = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]
        .iter()
        // SAFETY: loading the CUDA driver runs only its own initialisers, as burn-cuda would.
        .any(|name| unsafe { libloading::Library::new(name) }.is_ok());
    if !driver_found {
        return Err("no CUDA driver on this machine (libcuda could not be loaded)".into());
    }
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| {
        let device = burn_cuda::CudaDevice::new(index);
        let ones = Tensor::<Cuda, 1>::ones([4], &device);
        ones.sum().into_scalar()
    });
    std::panic::set_hook(previous_hook);
    match result {
        Ok(4.0) => Ok(()),
        Ok(sum) => Err(format!(
            "a test kernel on GPU {index} returned {sum}, not 4"
        )),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            Err(format!(
                "GPU {index} failed a test kernel ({})",
                first_sentence(message)
            ))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda(_index: usize) -> Result<(), String> {
    Err("this ddpm was built without the `cuda` feature".into())
}

/// Driver errors can run to many lines (library search paths); the first line says enough.
#[cfg(feature = "cuda")]
fn first_sentence(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.find(" - ") {
        Some(cut) => line[..cut].to_string(),
        None => line.to_string(),
    }
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
