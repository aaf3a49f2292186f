//! cuDNN and cuBLAS: whether they load, and this thread's handles to them.
//!
//! cudarc loads both libraries at their first call and panics if they are missing, so
//! [`libraries`] looks for them first. cuDNN handles are bound to one thread; each thread that
//! computes keeps its own handles (one set per GPU), a stream for the calls, and the
//! algorithms cuDNN's heuristics chose per convolution shape, so that a shape is looked up
//! once per process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
use cudarc::cudnn::Cudnn;
use cudarc::cudnn::sys::{
    cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionFwdAlgo_t,
};
use cudarc::driver::{CudaContext, CudaStream};

/// Whether cuDNN and cuBLAS can be loaded; the reason if not.
pub fn libraries() -> Result<(), String> {
    // SAFETY: each only tries `dlopen` on the library's usual names; no symbol is called.
    let cudnn = unsafe { cudarc::cudnn::sys::is_culib_present() };
    // SAFETY: as above.
    let cublas = unsafe { cudarc::cublas::sys::is_culib_present() };
    match (cudnn, cublas) {
        (true, true) => Ok(()),
        (false, true) => Err("libcudnn could not be loaded".into()),
        (true, false) => Err("libcublas could not be loaded".into()),
        (false, false) => Err("neither libcudnn nor libcublas could be loaded".into()),
    }
}

/// What cuDNN computes for a convolution layer: its direction, operand types and geometry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConvKey {
    /// 0 forward, 1 input gradient, 2 weight gradient.
    pub pass: u8,
    /// bf16 (else f32).
    pub bf16: bool,
    /// The convolution's input, weight and output shapes.
    pub shapes: [[usize; 4]; 3],
    /// Padding, stride, dilation (each height then width) and groups.
    pub geometry: [usize; 7],
}

/// An algorithm cuDNN's heuristics chose, for one of the three passes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Algorithm {
    Forward(cudnnConvolutionFwdAlgo_t),
    InputGrad(cudnnConvolutionBwdDataAlgo_t),
    WeightGrad(cudnnConvolutionBwdFilterAlgo_t),
}

/// The algorithm for a [`ConvKey`] and its workspace in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chosen {
    pub algorithm: Algorithm,
    pub workspace: usize,
}

/// One thread's handles for one GPU.
pub(crate) struct Handles {
    pub stream: Arc<CudaStream>,
    pub cudnn: Arc<Cudnn>,
    pub blas: CudaBlas,
    pub chosen: HashMap<ConvKey, Chosen>,
}

impl Handles {
    fn new(index: usize) -> Self {
        let context = CudaContext::new(index).expect("the GPU's primary context");
        let stream = context.new_stream().expect("a stream for library calls");
        let cudnn = Cudnn::new(stream.clone()).expect("a cuDNN handle");
        let blas = CudaBlas::new(stream.clone()).expect("a cuBLAS handle");
        // f32 products on TF32 tensor cores, as burn-cuda's and (with `allow_tf32`, which the
        // benchmark's reference sets) PyTorch's; bf16 products are unaffected.
        // SAFETY: a live handle and a valid mode.
        unsafe { cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH) }
            .result()
            .expect("cuBLAS's math mode");
        Self {
            stream,
            cudnn,
            blas,
            chosen: HashMap::new(),
        }
    }
}

thread_local! {
    static HANDLES: RefCell<Vec<(usize, Handles)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `body` with this thread's handles for GPU `index`, making them on first use.
pub(crate) fn with_handles<T>(index: usize, body: impl FnOnce(&mut Handles) -> T) -> T {
    HANDLES.with(|cell| {
        let mut all = cell.borrow_mut();
        let at = match all.iter().position(|(gpu, _)| *gpu == index) {
            Some(at) => at,
            None => {
                all.push((index, Handles::new(index)));
                all.len() - 1
            }
        };
        body(&mut all[at].1)
    })
}
