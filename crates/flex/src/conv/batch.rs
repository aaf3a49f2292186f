//! A convolution's forward pass and gradients over a batch of row-major f32 images, a few images
//! per rayon task, and per image its patch matrix, then one matrix product (gemm).
//!
//! - forward: `y_n [Cout, P] = W [Cout, K] × patches(x_n) [K, P]`
//! - input gradient (the transposed convolution): `dx_n = col2im(Wᵀ [K, Cout] × dy_n [Cout, P])`
//! - weight gradient: `dWᵀ [K, Cout] = Σ_n patches(x_n) [K, P] × dy_nᵀ [P, Cout]`
//!
//! with `K = Cin·kh·kw` and `P = out_h·out_w`. A transposed convolution is the same three with
//! the roles swapped (its forward pass is a convolution's input gradient).

use rayon::prelude::*;

use super::im2col::{Geometry, Patches};
use crate::par_rows::{Layout, filled_in_parallel};
use crate::product::{Operand, matmul, product_parallelism};

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
