//! 3×3 stride-1 convolutions with one pixel of padding, the U-Nets' main layers, by Winograd's
//! minimal filtering: each pass transforms tiles of its operands, runs one matrix product per
//! position of the transformed tile over the whole batch's tiles, and transforms back.
//! F(4×4, 3×3) does 4× fewer multiplications than the patch-matrix product.
//!
//! With `ξ` a position of the `A×A` transformed tile and `T` the batch's tiles:
//! - forward: `M_ξ [Cout, T] = U_ξ [Cout, Cin] × V_ξ [Cin, T]`, where `U = G g Gᵀ` per kernel
//!   and `V = Bᵀ d B` per input tile, then `y = Aᵀ M A` per tile;
//! - input gradient: the forward pass of `dy` with every kernel flipped and the channels
//!   swapped;
//! - weight gradient: `dU_ξ [Cout, Cin] = dM_ξ [Cout, T] × V_ξᵀ [T, Cin]`, where `dM = A dy Aᵀ`
//!   per output-gradient tile, then `dg = Gᵀ dU G`.
//!
//! Every product has the batch's tiles as one side, so it stays wide on small maps. Results
//! differ from the direct convolution's by rounding only; the transforms scale values by up to
//! 8 on the way, so the rounding errors are tens of times a direct product's (a few 1e-6 of the
//! output's largest value).

mod buffers;
mod plan;
mod tile;

use std::ops::Range;

use self::plan::Plan;
use self::tile::M;
use super::im2col::Geometry;

/// The most tiles one pass transforms at a time: larger batches go through in groups of images,
/// so that the transformed operands (36 values per tile and channel, kept between layers) stay
/// near 150 MB at 256 channels in and out instead of growing with the batch.
const MAX_TILES: usize = 4096;

/// Whether these kernels compute the convolution of `g` faster than the patch-matrix kernels:
/// 3×3, stride 1, one pixel of padding, and maps and channels large enough that the products
/// saved outweigh the transforms (measured with `cargo bench -p ddpm-flex`: 64 channels gain
/// on 32×32 maps and 32 lose on 16×16; on 8×8, 256 channels gain; 4×4 maps lose).
pub fn applies(g: &Geometry) -> bool {
    let (channels, side) = (g.channels_in.min(g.channels_out), g.out_h.min(g.out_w));
    let large_enough = match side {
        16.. => channels >= 64,
        8..16 => channels >= 256,
        _ => false,
    };
    g.kernel == [3, 3] && g.stride == [1, 1] && g.padding == [1, 1] && large_enough
}

/// `x` `[N, Cin, H, W]`, `weight` `[Cout, Cin, 3, 3]` → `[N, Cout, H, W]`, plus `bias` per
/// output channel.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let image_len = g.channels_in * g.in_plane();
    let mut outputs = groups(g).map(|(images, group)| {
        let x = &x[images.start * image_len..images.end * image_len];
        Plan::new(&group).forward(x, weight, bias)
    });
    let first = outputs.next().expect("a batch has an image");
    outputs.fold(first, |mut y, group| {
        y.extend_from_slice(&group);
        y
    })
}

/// The gradient of [`forward`] with respect to `x`, from the output gradient `dy`.
pub fn input_grad(weight: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let swapped = Geometry {
        channels_in: g.channels_out,
        channels_out: g.channels_in,
        in_h: g.out_h,
        in_w: g.out_w,
        out_h: g.in_h,
        out_w: g.in_w,
        ..*g
    };
    forward(dy, &flipped(weight, g), None, &swapped)
}

/// The gradient of [`forward`] with respect to the weight, `[Cout, Cin, 3, 3]`.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let (x_len, dy_len) = (
        g.channels_in * g.in_plane(),
        g.channels_out * g.out_pixels(),
    );
    let mut grads = groups(g).map(|(images, group)| {
        let x = &x[images.start * x_len..images.end * x_len];
        let dy = &dy[images.start * dy_len..images.end * dy_len];
        Plan::new(&group).weight_grad(x, dy)
    });
    let first = grads.next().expect("a batch has an image");
    grads.fold(first, |mut sum, group| {
        sum.iter_mut().zip(&group).for_each(|(s, g)| *s += g);
        sum
    })
}

/// The batch in groups of images of at most [`MAX_TILES`] tiles (at least one image): each
/// group's images and its geometry.
fn groups(g: &Geometry) -> impl Iterator<Item = (Range<usize>, Geometry)> {
    let per_image = g.out_h.div_ceil(M) * g.out_w.div_ceil(M);
    let images = (MAX_TILES / per_image).max(1);
    (0..g.batch).step_by(images).map(move |first| {
        let range = first..(first + images).min(g.batch);
        let group = Geometry {
            batch: range.len(),
            ..*g
        };
        (range, group)
    })
}

/// `[Cout, Cin, 3, 3]` → `[Cin, Cout, 3, 3]`, each kernel turned by 180°.
fn flipped(weight: &[f32], g: &Geometry) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for (index, kernel) in weight.chunks_exact(9).enumerate() {
        let (co, ci) = (index / g.channels_in, index % g.channels_in);
        let target = &mut out[(ci * g.channels_out + co) * 9..][..9];
        target
            .iter_mut()
            .zip(kernel.iter().rev())
            .for_each(|(t, &k)| *t = k);
    }
    out
}

#[cfg(test)]
mod tests;
