//! Single-head attention over row-major f32 batches `q`, `k`, `v` `[N, C, L]`, an image per rayon
//! task, each product one gemm over strided views (no transpose is copied).
//!
//! With `s = 1/√C`, per image:
//! - forward: `S = qᵀ·k` `[L, L]`, `P = softmax(s·S)` along each row, `out = v·Pᵀ` `[C, L]`;
//! - backward, given `dout`: `dv = dout·P`, `dP = doutᵀ·v`,
//!   `dS = s·P ⊙ (dP − rowsum(P ⊙ dP))`, `dq = k·dSᵀ`, `dk = q·dS`.
//!
//! The softmax is fused: one pass for the row maximum, one for the exponentials and their sum, one
//! to scale them; its exponential is [`exp`], which vectorises.

use rayon::prelude::*;

use crate::exp::exp;
use crate::par_rows::{filled_in_parallel, pair_sum, row_sum};
use crate::product::{Operand, matmul, product_parallelism};

/// A batch's shape: `images` of `channels` rows of `positions` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub images: usize,
    pub channels: usize,
    pub positions: usize,
}

impl Shape {
    /// `[N, C, L]`, the dimensions of `q`, `k`, `v`, the output and their gradients.
    pub fn dims(&self) -> [usize; 3] {
        [self.images, self.channels, self.positions]
    }

    /// Values per image of `q`, `k`, `v` or the output.
    fn image_len(&self) -> usize {
        self.channels * self.positions
    }

    /// Values per image of the attention weights.
    fn weights_len(&self) -> usize {
        self.positions * self.positions
    }

    fn scale(&self) -> f32 {
        (1.0 / (self.channels as f64).sqrt()) as f32
    }
}

/// The forward pass's output `[N, C, L]` and attention weights `P` `[N, L, L]`.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], shape: Shape) -> (Vec<f32>, Vec<f32>) {
    let (len, weights_len, positions) = (shape.image_len(), shape.weights_len(), shape.positions);
    for values in [q, k, v] {
        assert_eq!(values.len(), shape.images * len);
    }
    let (parallelism, scale) = (product_parallelism(shape.images), shape.scale());
    let weights = filled_in_parallel(shape.images * weights_len, weights_len, |n, p| {
        let (q, k) = (image(q, n, len), image(k, n, len));
        let dims = [positions, positions, shape.channels];
        let (q, k) = (
            Operand::transposed(q, positions),
            Operand::rows(k, positions),
        );
        matmul(p, dims, q, k, false, parallelism);
        p.chunks_exact_mut(positions)
            .for_each(|row| softmax(row, scale));
    });
    let out = filled_in_parallel(shape.images * len, len, |n, out| {
        let v = Operand::rows(image(v, n, len), positions);
        let p = Operand::transposed(&weights[n * weights_len..][..weights_len], positions);
        matmul(
            out,
            [shape.channels, positions, positions],
            v,
            p,
            false,
            parallelism,
        );
    });
    (out, weights)
}

/// Image `n`'s `len` values of a batch.
fn image(t: &[f32], n: usize, len: usize) -> &[f32] {
    &t[n * len..][..len]
}

/// `row ← softmax(scale·row)`.
fn softmax(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |max, &v| max.max(v));
    row.iter_mut().for_each(|v| *v = exp((*v - max) * scale));
    let inverse = (1.0 / row_sum(row, |v| v)) as f32;
    row.iter_mut().for_each(|v| *v *= inverse);
}

/// The gradients of `q`, `k` and `v` `[N, C, L]`.
#[derive(Debug)]
pub struct Gradients {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// The backward pass, given the inputs, the forward pass's weights and the output's gradient.
pub fn backward([q, k, v]: [&[f32]; 3], weights: &[f32], dout: &[f32], shape: Shape) -> Gradients {
    let (len, weights_len, positions) = (shape.image_len(), shape.weights_len(), shape.positions);
    let (channels, scale) = (shape.channels, shape.scale());
    let parallelism = product_parallelism(shape.images);
    let total = shape.images * len;
    let (mut dq, mut dk, mut dv) = (vec![0.0; total], vec![0.0; total], vec![0.0; total]);
    dq.par_chunks_mut(len)
        .zip(dk.par_chunks_mut(len))
        .zip(dv.par_chunks_mut(len))
        .enumerate()
        .for_each(|(n, ((dq, dk), dv))| {
            let p = &weights[n * weights_len..][..weights_len];
            let dout = image(dout, n, len);
            let rows = |t| Operand::rows(t, positions);
            // dv = dout·P
            matmul(
                dv,
                [channels, positions, positions],
                rows(dout),
                rows(p),
                false,
                parallelism,
            );
            // dP = doutᵀ·v, then dS in place.
            let mut ds = vec![0.0; weights_len];
            let dout_t = Operand::transposed(dout, positions);
            let dims = [positions, positions, channels];
            matmul(
                &mut ds,
                dims,
                dout_t,
                rows(image(v, n, len)),
                false,
                parallelism,
            );
            for (ds, p) in ds
                .chunks_exact_mut(positions)
                .zip(p.chunks_exact(positions))
            {
                let dot = pair_sum(ds, p, |ds, p| ds * p) as f32;
                ds.iter_mut()
                    .zip(p)
                    .for_each(|(ds, &p)| *ds = scale * p * (*ds - dot));
            }
            // dq = k·dSᵀ, dk = q·dS
            let ds_t = Operand::transposed(&ds, positions);
            let dims = [channels, positions, positions];
            matmul(dq, dims, rows(image(k, n, len)), ds_t, false, parallelism);
            matmul(
                dk,
                dims,
                rows(image(q, n, len)),
                rows(&ds),
                false,
                parallelism,
            );
        });
    Gradients {
        q: dq,
        k: dk,
        v: dv,
    }
}
