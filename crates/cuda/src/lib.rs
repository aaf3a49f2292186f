//! What DDPM needs of burn-cuda beyond its operations.
//!
//! - [`probe`]: whether a GPU can run a kernel, as an error message instead of burn-cuda's panic
//!   when the driver is missing.
//! - [`configure_caches`]: cubecl's autotune results and compiled kernels kept in one user cache
//!   folder ([`cache_dir`]), so that a second run of the same shapes starts at full speed
//!   wherever it is started from. cubecl otherwise keeps its tuning under the nearest `target/`
//!   folder above the working directory and compiles every kernel afresh in each process.
//! - [`ops`]: the table of operations for burn-cuda (burn's own: cubecl's kernels).

mod caches;
mod probe;

pub use caches::{CacheDirs, cache_dir, configure_caches};
pub use probe::probe;

use burn::tensor::backend::Backend;
use ddpm_ops::Ops;

/// The table for a burn-cuda backend: burn's operations, which are cubecl's kernels on the GPU
/// (convolutions as implicit GEMMs, autotuned per shape).
pub fn ops<B: Backend>() -> Ops<B> {
    Ops::burn()
}
