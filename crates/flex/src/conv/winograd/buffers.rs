//! The buffers the passes reuse: the calling thread's transformed operands, and each rayon
//! thread's scratch for the transforms.

use std::cell::Cell;

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

thread_local! {
    static WORKSPACE: Cell<Option<Workspace>> = const { Cell::new(None) };
}

impl Workspace {
    /// Runs `f` with this thread's three buffers (fresh ones if a call on this thread holds
    /// them).
    pub fn with<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
        let mut workspace = WORKSPACE.take().unwrap_or_default();
        let result = f(&mut workspace.buffers);
        WORKSPACE.set(Some(workspace));
        result
    }
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
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

impl Scratch {
    /// Runs `f` with this thread's scratch (a fresh one if a task on this thread holds it).
    pub fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        let mut scratch = SCRATCH.take().unwrap_or_default();
        let result = f(&mut scratch);
        SCRATCH.set(Some(scratch));
        result
    }
}
