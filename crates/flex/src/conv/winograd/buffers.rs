//! The buffers the passes reuse: the calling thread's transformed operands, and each rayon
//! thread's scratch for the transforms.

use std::cell::Cell;
use std::thread::LocalKey;

use rayon::prelude::*;

/// `buffer` resized to `len` (its old values kept: `fill` overwrites them) and filled in
/// parallel, `fill(index, chunk)` for each `chunk_len`-long chunk.
pub fn refill(
    buffer: &mut Vec<f32>,
    len: usize,
    chunk_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) {
    buffer.resize(len, 0.0);
    buffer
        .par_chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(index, chunk)| fill(index, chunk));
}

/// The calling thread's transformed operands, kept from convolution to convolution: they are
/// larger than the layer's input and would otherwise be allocated and page-faulted in anew.
#[derive(Default)]
pub struct Workspace {
    buffers: [Vec<f32>; 3],
}

/// A thread's buffers for the transforms, kept from task to task (fresh ones would be zeroed
/// and page-faulted in each time).
#[derive(Default)]
pub struct Scratch {
    /// An image channel with its zero border.
    pub padded: Vec<f32>,
    /// Tiles position by position, before or after a transform.
    pub tiles: Vec<f32>,
    /// A transform's half-way rows.
    pub mid: Vec<f32>,
}

thread_local! {
    static WORKSPACE: Cell<Option<Workspace>> = const { Cell::new(None) };
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

impl Workspace {
    /// Runs `f` with this thread's three buffers.
    pub fn with<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
        with_kept(&WORKSPACE, |workspace| f(&mut workspace.buffers))
    }
}

impl Scratch {
    /// Runs `f` with this thread's scratch.
    pub fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        with_kept(&SCRATCH, f)
    }
}

/// Runs `f` with the value `kept` holds for this thread, and keeps it there for the next call (a
/// fresh default one if a call further up this thread's stack holds it, as rayon may nest them).
fn with_kept<T: Default, R>(
    kept: &'static LocalKey<Cell<Option<T>>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut value = kept.take().unwrap_or_default();
    let result = f(&mut value);
    kept.set(Some(value));
    result
}
