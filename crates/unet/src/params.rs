//! Counting a model's parameters, and refusing one that cannot fit in memory.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;

use crate::UnetError;

/// Trainable parameters, counted as PyTorch's `sum(p.numel() for p in model.parameters())` does:
/// BatchNorm running statistics are state, not parameters (burn's `num_params` counts them).
pub fn trainable_params<B: Backend, M: Module<B> + ModuleSnapshot<B>>(module: &M) -> usize {
    module
        .collect(None, None, false)
        .iter()
        .filter(|tensor| {
            let path = tensor.full_path();
            !(path.ends_with("running_mean") || path.ends_with("running_var"))
        })
        .map(|tensor| tensor.shape.num_elements())
        .sum()
}

/// Every float tensor of a module (parameters and running statistics), counted from their
/// shapes without allocating them: burn initialises a parameter at its first use.
pub fn lazy_tensor_elements<B: Backend, M: Module<B>>(module: &M) -> u64 {
    struct Count(u64);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += param.lazy_shape().num_elements() as u64;
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// The memory this machine has available, in bytes (Linux's `MemAvailable`), if known.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a model whose f32 tensors alone would not fit in the available memory, before any
/// of them is allocated.
pub(crate) fn check_fits<B: Backend, M: Module<B>>(model: &M) -> Result<(), UnetError> {
    let elements = lazy_tensor_elements(model);
    let bytes = elements.saturating_mul(4);
    match available_memory() {
        Some(available) if bytes > available => Err(UnetError::TooLarge {
            elements,
            bytes,
            available,
        }),
        _ => Ok(()),
    }
}
