//! The process's memory allocator.
//!
//! A CPU training step allocates and frees hundreds of megabytes of tensors (activations, im2col
//! buffers, gradients). glibc's malloc hands blocks above 32 MiB straight back to the kernel and
//! trims its heap as it goes, so every step page-faults the same memory in again. mimalloc with
//! purging switched off keeps freed memory for the next step; resident memory stays at the peak
//! of a step, which training reaches every step anyway.

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h: milliseconds before freed memory goes back to the OS,
/// -1 for never. libmimalloc-sys does not name it; mimalloc keeps option numbers stable (retired
/// options keep their slots), and it is 15 in both the v2 and v3 headers.
const PURGE_DELAY: mi_option_t = 15;

/// Keep freed memory for reuse instead of returning it to the OS. Call first thing in `main`.
pub fn keep_freed_memory() {
    // SAFETY: mimalloc's option setters are not thread-safe; `main` calls this before it starts
    // any thread. The option only changes when memory is returned, never what is valid.
    unsafe { mi_option_set(PURGE_DELAY, -1) };
}
