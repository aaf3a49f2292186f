//! Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray, 2016): the transforms that turn a
//! 3×3 correlation of an `(m+2)×(m+2)` input tile into an element-wise product of `(m+2)²`
//! values, and their adjoints, computed on [`LANES`] tiles at once so that the compiler
//! vectorises across tiles.
//!
//! For one tile, `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` is the `m×m` correlation of the input tile
//! `d` with the kernel `g`. Everything is linear, so the gradients of the kernel and of the
//! element-wise factors follow by transposing each matrix.

/// The matrices of F(M×M, 3×3), whose transformed tiles are `A×A` (`A = M + 2`).
pub trait Tile<const M: usize, const A: usize>: Sync {
    /// `Bᵀ`: input tile → transformed tile, applied on both sides.
    const BT: [[f32; A]; A];
    /// `G`: 3×3 kernel → transformed kernel, applied on both sides.
    const G: [[f32; 3]; A];
    /// `Aᵀ`: transformed product → output tile, applied on both sides.
    const AT: [[f32; A]; M];
    /// `A`, for the output transform's adjoint (an output gradient into the product's).
    const A_: [[f32; M]; A] = transpose(Self::AT);
    /// `Gᵀ`, for the kernel transform's adjoint (a transformed kernel's gradient into the
    /// kernel's).
    const GT: [[f32; A]; 3] = transpose(Self::G);
}

/// F(4×4, 3×3): 6×6 tiles, 36 products for 16 outputs (4× fewer than 144), at the points 0,
/// ±1, ±2 and ∞; its transforms scale values by up to 8, so it rounds a little worse.
pub struct F4;

impl Tile<4, 6> for F4 {
    const BT: [[f32; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
}

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
        _ => combine_n::<6>(target, coefficients, sources),
    }
}

/// The most rows a transform combines: `A` of F(4×4, 3×3).
const MAX_ROWS: usize = 6;

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

    /// The transforms of one tile (lane 0) in one dimension: `Aᵀ[(G g) ⊙ (Bᵀ d)]`.
    fn correlate_1d<T: Tile<M, A>, const M: usize, const A: usize>(
        d: [f32; A],
        g: [f32; 3],
    ) -> [f32; M] {
        let v: Vec<f32> = T::BT.iter().map(|row| dot(row, &d)).collect();
        let u: Vec<f32> = T::G.iter().map(|row| dot(row, &g)).collect();
        let product: Vec<f32> = v.iter().zip(&u).map(|(v, u)| v * u).collect();
        T::AT.map(|row| dot(&row, &product))
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| a * b).sum()
    }

    fn check_1d<T: Tile<M, A>, const M: usize, const A: usize>() {
        let d: [f32; A] = std::array::from_fn(|i| (i as f32 * 0.7 - 1.3).sin());
        let g = [0.5, -1.25, 2.0];
        let y = correlate_1d::<T, M, A>(d, g);
        for (i, y) in y.iter().enumerate() {
            let direct: f32 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!((y - direct).abs() < 1e-5, "output {i}: {y} vs {direct}");
        }
    }

    #[test]
    fn tiles_correlate_in_one_dimension() {
        check_1d::<F4, 4, 6>();
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
        assert_eq!(F4::A_[5], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            F4::GT[2],
            [0.0, -1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0]
        );
    }
}
