//! Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray, 2016): the transforms that turn a
//! 3×3 correlation of a 6×6 input tile into an element-wise product of 36 values, and their
//! adjoints, applied to many tiles at once, position by position, so that every operation runs
//! along a row of tiles.
//!
//! For one tile, `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` is the 4×4 correlation of the input tile `d`
//! with the kernel `g`, at the points 0, ±1, ±2 and ∞: 36 products for 16 outputs (4× fewer than
//! 144). Everything is linear, so the gradients of the kernel and of the element-wise factors
//! follow by transposing each matrix.

/// Output tile side.
pub const M: usize = 4;

/// Transformed (and input) tile side.
pub const A: usize = M + 2;

/// `Bᵀ`: input tile → transformed tile, applied on both sides.
pub const INPUT: [[f32; A]; A] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// `G`: 3×3 kernel → transformed kernel, applied on both sides.
pub const KERNEL: [[f32; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `Aᵀ`: transformed product → output tile, applied on both sides.
pub const OUTPUT: [[f32; A]; M] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// `A`: an output tile's gradient → the transformed product's (the adjoint of [`OUTPUT`]).
pub const OUTPUT_ADJOINT: [[f32; M]; A] = transpose(OUTPUT);

/// `Gᵀ`: a transformed kernel's gradient → the kernel's (the adjoint of [`KERNEL`]).
pub const KERNEL_ADJOINT: [[f32; A]; 3] = transpose(KERNEL);

const fn transpose<const R: usize, const C: usize>(m: [[f32; C]; R]) -> [[f32; R]; C] {
    let mut out = [[0.0; R]; C];
    let mut r = 0;
    while r < R {
        let mut c = 0;
        while c < C {
            out[c][r] = m[r][c];
            c += 1;
        }
        r += 1;
    }
    out
}

/// `P X Qᵀ` for a batch of `len` tiles stored position by position: `x` holds the `R×C` positions
/// as rows of `len` values (position `(r, c)` at `x[(r·C + c)·x_step..]`), and position `(i, j)`
/// of the result, `Σ_r Σ_c P[i][r]·X[r][c]·Q[j][c]`, is written to
/// `out[(i·C2 + j)·out_step..][..len]`.
/// `mid` is scratch for the `R2×C` half-way rows. Every operation runs along a row, so it
/// vectorises however the tiles lie in the image.
pub fn sandwich<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    p: &[[f32; R]; R2],
    (x, x_step): (&[f32], usize),
    q: &[[f32; C]; C2],
    len: usize,
    mid: &mut Vec<f32>,
    (out, out_step): (&mut [f32], usize),
) {
    mid.resize(R2 * C * len, 0.0);
    for (i, p) in p.iter().enumerate() {
        for c in 0..C {
            let rows = p
                .iter()
                .enumerate()
                .map(|(r, &coefficient)| (coefficient, &x[(r * C + c) * x_step..][..len]));
            combine(&mut mid[(i * C + c) * len..][..len], rows);
        }
    }
    for i in 0..R2 {
        for (j, q) in q.iter().enumerate() {
            let rows = q
                .iter()
                .enumerate()
                .map(|(c, &coefficient)| (coefficient, &mid[(i * C + c) * len..][..len]));
            combine(&mut out[(i * C2 + j) * out_step..][..len], rows);
        }
    }
}

/// `target = Σ coefficient · row` over the rows whose coefficient is not zero, in one pass.
fn combine<'a>(target: &mut [f32], rows: impl Iterator<Item = (f32, &'a [f32])>) {
    let mut coefficients = [0.0; MAX_ROWS];
    let mut sources: [&[f32]; MAX_ROWS] = [&[]; MAX_ROWS];
    let mut count = 0;
    for (coefficient, row) in rows.filter(|(coefficient, _)| *coefficient != 0.0) {
        coefficients[count] = coefficient;
        sources[count] = row;
        count += 1;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, just checked.
        return unsafe { combine_avx2(target, &coefficients, &sources, count) };
    }
    combine_rows(target, &coefficients, &sources, count);
}

/// [`combine_rows`] compiled for AVX2: twice SSE's lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn combine_avx2(target: &mut [f32], coefficients: &[f32], rows: &[&[f32]], count: usize) {
    combine_rows(target, coefficients, rows, count);
}

/// `target = Σ_{r < count} coefficients[r] · rows[r]`.
#[inline(always)]
fn combine_rows(target: &mut [f32], coefficients: &[f32], sources: &[&[f32]], count: usize) {
    match count {
        0 => target.fill(0.0),
        1 => combine_n::<1>(target, coefficients, sources),
        2 => combine_n::<2>(target, coefficients, sources),
        3 => combine_n::<3>(target, coefficients, sources),
        4 => combine_n::<4>(target, coefficients, sources),
        5 => combine_n::<5>(target, coefficients, sources),
        _ => combine_n::<MAX_ROWS>(target, coefficients, sources),
    }
}

/// The most rows a transform combines.
const MAX_ROWS: usize = A;

/// `target = Σ_{r < N} coefficients[r] · rows[r]`, with `N` known to the compiler so that the
/// sum stays in registers and the loop vectorises along the row.
#[inline(always)]
fn combine_n<const N: usize>(target: &mut [f32], coefficients: &[f32], rows: &[&[f32]]) {
    let len = target.len();
    let rows: [&[f32]; N] = std::array::from_fn(|r| &rows[r][..len]);
    let coefficients: [f32; N] = std::array::from_fn(|r| coefficients[r]);
    for (k, value) in target.iter_mut().enumerate() {
        let mut sum = coefficients[0] * rows[0][k];
        for r in 1..N {
            sum += coefficients[r] * rows[r][k];
        }
        *value = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| a * b).sum()
    }

    /// One tile's transforms in one dimension, `Aᵀ[(G g) ⊙ (Bᵀ d)]`, against the direct
    /// correlation.
    #[test]
    fn tiles_correlate_in_one_dimension() {
        let d: [f32; A] = std::array::from_fn(|i| (i as f32 * 0.7 - 1.3).sin());
        let g = [0.5, -1.25, 2.0];
        let v: Vec<f32> = INPUT.iter().map(|row| dot(row, &d)).collect();
        let u: Vec<f32> = KERNEL.iter().map(|row| dot(row, &g)).collect();
        let product: Vec<f32> = v.iter().zip(&u).map(|(v, u)| v * u).collect();
        for (i, row) in OUTPUT.iter().enumerate() {
            let (y, direct) = (dot(row, &product), dot(&d[i..i + 3], &g));
            assert!((y - direct).abs() < 1e-5, "output {i}: {y} vs {direct}");
        }
    }

    #[test]
    fn sandwich_multiplies_on_both_sides_for_every_tile() {
        let p = [[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]];
        let q = [[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]];
        let len = 5;
        let x: Vec<f32> = (0..2 * 3 * len).map(|v| (v % 11) as f32 - 4.0).collect();
        let mut out = vec![f32::NAN; 3 * 2 * 7];
        sandwich(&p, (&x, len), &q, len, &mut Vec::new(), (&mut out, 7));
        for tile in 0..len {
            for i in 0..3 {
                for (j, q) in q.iter().enumerate() {
                    let expected: f32 = (0..2)
                        .flat_map(|r| (0..3).map(move |c| (r, c)))
                        .map(|(r, c)| p[i][r] * x[(r * 3 + c) * len + tile] * q[c])
                        .sum();
                    assert_eq!(out[(i * 2 + j) * 7 + tile], expected);
                }
            }
        }
    }

    #[test]
    fn adjoints_are_transposes() {
        assert_eq!(OUTPUT_ADJOINT[5], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            KERNEL_ADJOINT[2],
            [0.0, -1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0]
        );
    }
}
