//! Kernel Inception Distance (Bińkowski et al. 2018) as torch-fidelity and clean-fid compute it:
//! the unbiased estimate of the squared MMD with the cubic polynomial kernel
//! `k(x, y) = (x·y / d + 1)³`, averaged over random subsets of equal size from both sets, with the
//! (population) standard deviation over the subsets.

use faer::Mat;
use serde::Serialize;

use crate::rng::SplitMix;
use crate::{EvalError, Features};

/// torch-fidelity's defaults.
pub const KID_SUBSETS: usize = 100;
/// torch-fidelity's default subset size (smaller sets use their size).
pub const KID_SUBSET_SIZE: usize = 1000;

/// A KID estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kid {
    /// Mean of the subsets' estimates.
    pub mean: f64,
    /// Their standard deviation.
    pub std: f64,
    /// Subsets drawn.
    pub subsets: usize,
    /// Vectors per subset and set.
    pub subset_size: usize,
}

/// KID between `x` and `y` over `subsets` pairs of random subsets of `min(max_subset_size,
/// |x|, |y|)` vectors each, drawn from `seed`. With subsets as large as both sets, every draw is
/// the whole sets and the estimate is exact.
pub fn kid(
    x: &Features,
    y: &Features,
    subsets: usize,
    max_subset_size: usize,
    seed: u64,
) -> Result<Kid, EvalError> {
    if x.dims != y.dims {
        return Err(EvalError::FeatureSizes(x.dims, y.dims));
    }
    let m = max_subset_size.min(x.rows()).min(y.rows());
    if m < 2 {
        let got = x.rows().min(y.rows());
        return Err(EvalError::TooFewImages {
            what: "KID",
            needed: 2,
            got,
        });
    }
    let mut rng = SplitMix::new(seed);
    let estimates: Vec<f64> = (0..subsets.max(1))
        .map(|_| {
            let a = pick(x, &rng.subset(x.rows(), m));
            let b = pick(y, &rng.subset(y.rows(), m));
            unbiased_mmd2(&a, &b, x.dims)
        })
        .collect();
    let count = estimates.len() as f64;
    let mean = estimates.iter().sum::<f64>() / count;
    let variance = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / count;
    Ok(Kid {
        mean,
        std: variance.sqrt(),
        subsets: estimates.len(),
        subset_size: m,
    })
}

/// The rows `indices` of `features` as a matrix.
fn pick(features: &Features, indices: &[usize]) -> Mat<f32> {
    Mat::from_fn(indices.len(), features.dims, |i, j| {
        features.row(indices[i])[j]
    })
}

/// `(Σ_{i≠j} k(aᵢ, aⱼ) + Σ_{i≠j} k(bᵢ, bⱼ)) / (m(m − 1)) − 2 Σ_{i,j} k(aᵢ, bⱼ) / m²`. The dot
/// products in f32 (their relative error, ~1e-6, is far below KID's sampling error), the kernel
/// and the sums in f64.
fn unbiased_mmd2(a: &Mat<f32>, b: &Mat<f32>, dims: usize) -> f64 {
    let m = a.nrows() as f64;
    let kernel_sum = |gram: Mat<f32>, skip_diagonal: bool| {
        let mut sum = 0.0;
        for i in 0..gram.nrows() {
            for j in 0..gram.ncols() {
                if !(skip_diagonal && i == j) {
                    sum += (gram[(i, j)] as f64 / dims as f64 + 1.0).powi(3);
                }
            }
        }
        sum
    };
    let within = kernel_sum(a * a.transpose(), true) + kernel_sum(b * b.transpose(), true);
    let between = kernel_sum(a * b.transpose(), false);
    within / (m * (m - 1.0)) - 2.0 * between / (m * m)
}
