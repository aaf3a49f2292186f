//! A convolution's forward pass and gradients over a batch of row-major f32 images, a few images
//! per rayon task, and per image its patch matrix, then one matrix product (gemm).
//!
//! - forward: `y_n [Cout, P] = W [Cout, K] × patches(x_n) [K, P]`
//! - input gradient (the transposed convolution): `dx_n = col2im(Wᵀ [K, Cout] × dy_n [Cout, P])`
//! - weight gradient: `dWᵀ [K, Cout] = Σ_n patches(x_n) [K, P] × dy_nᵀ [P, Cout]`
//!
//! with `K = Cin·kh·kw` and `P = out_h·out_w`. A transposed convolution is the same three with
//! the roles swapped (its forward pass is a convolution's input gradient).

use gemm::Parallelism;
use rayon::prelude::*;

use super::im2col::{Geometry, Patches};
use crate::par_rows::{Layout, filled_in_parallel};

/// A row-major matrix operand: the values, and the steps between rows and between columns.
#[derive(Clone, Copy)]
struct Operand<'a> {
    values: &'a [f32],
    row_step: usize,
    column_step: usize,
}

impl<'a> Operand<'a> {
    fn rows(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_step: columns,
            column_step: 1,
        }
    }

    /// The transpose of a row-major matrix with `columns` columns.
    fn transposed(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_step: 1,
            column_step: columns,
        }
    }

    fn covers(&self, rows: usize, columns: usize) -> bool {
        (rows - 1) * self.row_step + (columns - 1) * self.column_step < self.values.len()
    }
}

/// `out [m, n] (+)= lhs [m, k] × rhs [k, n]`, `out` row-major; adds when `accumulate`.
fn matmul(
    out: &mut [f32],
    [m, n, k]: [usize; 3],
    lhs: Operand,
    rhs: Operand,
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(m > 0 && n > 0 && k > 0 && out.len() >= m * n);
    assert!(lhs.covers(m, k) && rhs.covers(k, n));
    // SAFETY: the assertions keep every index gemm computes from these sizes and steps inside
    // the three slices, and `out` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.column_step as isize,
            lhs.row_step as isize,
            rhs.values.as_ptr(),
            rhs.column_step as isize,
            rhs.row_step as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// With fewer images than threads, each product uses the threads; otherwise the images do.
fn product_parallelism(images: usize) -> Parallelism {
    match images < rayon::current_num_threads() {
        true => Parallelism::Rayon(0),
        false => Parallelism::None,
    }
}

/// `x` `[N, Cin, H, W]`, `weight` `[Cout, Cin, kh, kw]` → `[N, Cout, out_h, out_w]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let (patch_len, pixels, plane) = (g.patch_len(), g.out_pixels(), g.channels_in * g.in_plane());
    let parallelism = product_parallelism(g.batch);
    let per_image = |patches: &mut Patches, (image, y): (usize, &mut [f32])| {
        patches.im2col(&x[image * plane..][..plane], g);
        let weight = Operand::rows(weight, patch_len);
        let patches = Operand::rows(&patches.matrix, pixels);
        let shape = [g.channels_out, pixels, patch_len];
        matmul(y, shape, weight, patches, false, parallelism);
        if let Some(bias) = bias {
            add_channel_bias(y, bias, pixels);
        }
    };
    for_each_image(g.batch * g.channels_out * pixels, g, per_image)
}

/// A new `[N, ...]` buffer of `out_len` values, each image's share written by
/// `per_image(patches, (image, out_n))` on a rayon thread, with that thread's scratch
/// [`Patches`] (kept from image to image: fresh ones would be zeroed and page-faulted in each
/// time). `out_n` comes zeroed.
fn for_each_image(
    out_len: usize,
    g: &Geometry,
    per_image: impl Fn(&mut Patches, (usize, &mut [f32])) + Sync,
) -> Vec<f32> {
    filled_in_parallel(out_len, out_len / g.batch, |image, out| {
        let mut patches = Patches::scratch(g);
        per_image(&mut patches, (image, out));
        patches.recycle();
    })
}

/// The transposed convolution of `y` `[N, Cout, out_h, out_w]` → `[N, Cin, H, W]`, plus `bias`
/// per `Cin` channel. Without a bias, and with `y` = `dy`, the gradient of [`forward`] with
/// respect to `x`.
pub fn transposed(weight: &[f32], y: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let (patch_len, pixels, plane) = (g.patch_len(), g.out_pixels(), g.channels_in * g.in_plane());
    let parallelism = product_parallelism(g.batch);
    let per_image = |patches: &mut Patches, (image, x): (usize, &mut [f32])| {
        let y = Operand::rows(&y[image * g.channels_out * pixels..], pixels);
        let weight = Operand::transposed(weight, patch_len);
        let shape = [patch_len, pixels, g.channels_out];
        matmul(&mut patches.matrix, shape, weight, y, false, parallelism);
        patches.col2im_add(g, x);
        if let Some(bias) = bias {
            add_channel_bias(x, bias, g.in_plane());
        }
    };
    for_each_image(g.batch * plane, g, per_image)
}

/// The gradient of [`forward`] with respect to the weight, `[Cout, Cin, kh, kw]`.
///
/// Each image adds `patches(x_n) [K, P] × dy_nᵀ [P, Cout]` to a transposed sum `[K, Cout]`,
/// transposed once at the end: gemm reads both operands along `P` then, where the product in
/// `[Cout, K]` order would pack the patch matrix with a stride of `P` (one cache set).
pub fn weight_grad(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let (patch_len, pixels, plane) = (g.patch_len(), g.out_pixels(), g.channels_in * g.in_plane());
    let parallelism = product_parallelism(g.batch);
    // One partial sum per thread: each image adds its product to its thread's.
    let images_per_part = g.batch.div_ceil(rayon::current_num_threads());
    let part = |first: usize| {
        let mut sum = vec![0.0; patch_len * g.channels_out];
        let mut patches = Patches::scratch(g);
        for image in first..(first + images_per_part).min(g.batch) {
            patches.im2col(&x[image * plane..][..plane], g);
            let dy = Operand::transposed(&dy[image * g.channels_out * pixels..], pixels);
            let matrix = Operand::rows(&patches.matrix, pixels);
            let shape = [patch_len, g.channels_out, pixels];
            matmul(&mut sum, shape, matrix, dy, image > first, parallelism);
        }
        patches.recycle();
        sum
    };
    let firsts: Vec<usize> = (0..g.batch).step_by(images_per_part).collect();
    let sums: Vec<Vec<f32>> = firsts.into_par_iter().map(part).collect();
    // grad[c, k] = Σ_parts sum[k, c], a block of output channels per task: each reads its
    // channels' contiguous slice of every row of the sums and writes its channels' rows in order.
    const CHANNELS_PER_TASK: usize = 16;
    let mut grad = vec![0.0; g.channels_out * patch_len];
    grad.par_chunks_mut(CHANNELS_PER_TASK * patch_len)
        .enumerate()
        .for_each(|(block, rows)| {
            let first = block * CHANNELS_PER_TASK;
            for k in 0..patch_len {
                for (channel, row) in rows.chunks_exact_mut(patch_len).enumerate() {
                    let at = k * g.channels_out + first + channel;
                    row[k] = sums.iter().map(|sum| sum[at]).sum();
                }
            }
        });
    grad
}

/// Adds `bias[c]` to every value of channel `c` of one image `[C, pixels]`.
fn add_channel_bias(image: &mut [f32], bias: &[f32], pixels: usize) {
    for (channel, &bias) in image.chunks_exact_mut(pixels).zip(bias) {
        channel.iter_mut().for_each(|value| *value += bias);
    }
}

/// Per-channel sums of `t` laid out as `layout` (a bias's gradient), a channel per rayon task.
pub fn channel_sums(t: &[f32], layout: Layout) -> Vec<f32> {
    (0..layout.channels)
        .into_par_iter()
        .map(|c| layout.channel_sum(t, c, |v| v) as f32)
        .collect()
}
