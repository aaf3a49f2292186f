//! GroupNorm with an affine step, optionally followed by SiLU, over a batch of row-major f32
//! values `[N, C, P]` (`P` = H·W pixels), rows of `P` values spread over rayon's threads.
//!
//! With `G` groups of `C/G` channels, per image `n` and group `g` the mean `μ` and the biased
//! variance `σ²` of its `M = (C/G)·P` values (one contiguous block), `s = 1 / sqrt(σ² + ε)`, and
//! per row `a = γ[c]·s`, `b = β[c] − μ·a`:
//! - forward: `z = a·x + b`, `y = z` or `y = silu(z) = z·sigmoid(z)`;
//! - backward: `dz = dy` or `dy·sigmoid(z)·(1 + z·(1 − sigmoid(z)))`, `dβ[c] = Σ dz`,
//!   `dγ[c] = Σ dz·x̂` with `x̂ = (x − μ)·s`, and per group `A = Σ_c γ[c]·Σ_p dz / M`,
//!   `B = Σ_c γ[c]·Σ_p dz·x̂ / M`, then `dx = s·(γ[c]·dz − A − x̂·B)`: one pass that writes `dz`
//!   and sums each row, and one multiply-add chain per value in place.
//!
//! Sums run in f32 lanes along a row and in f64 across rows; the sigmoid's exponential is
//! [`exp`](crate::exp::exp), which vectorises (libm's `expf` is a call per value).

use ddpm_ops::GroupNormOptions;
use rayon::prelude::*;

use crate::exp::exp;
use crate::par_rows::{Layout, filled_in_parallel, filled_rows_in_parallel, pair_sum, row_sum};

/// The channels' grouping of a batch: its layout and how many groups each image's channels form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    pub layout: Layout,
    pub groups: usize,
}

impl Grouping {
    /// Channels per group.
    fn width(&self) -> usize {
        self.layout.channels / self.groups
    }

    /// Values per group of one image.
    fn group_len(&self) -> usize {
        self.width() * self.layout.pixels
    }

    /// The group (over the whole batch, `n·G + g`) of a row `n·C + c`.
    fn group_of(&self, row: usize) -> usize {
        row / self.width()
    }
}

/// What the forward pass keeps for the backward one: γ, β and per group of each image `μ` and `s`.
#[derive(Debug, Clone)]
pub struct GroupStatistics {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub silu: bool,
}

impl GroupStatistics {
    /// The statistics of `x`'s groups (two passes: the variance sums squared deviations), with
    /// the affine step's `gamma` and `beta` and what `options` asks.
    pub fn of(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        options: GroupNormOptions,
        grouping: Grouping,
    ) -> Self {
        assert_eq!(x.len(), grouping.layout.len());
        let len = grouping.group_len();
        let (mean, inv_std) = x
            .par_chunks(len)
            .map(|group| {
                let mean = (row_sum(group, |v| v) / len as f64) as f32;
                let squares = row_sum(group, |v| (v - mean) * (v - mean));
                (
                    mean,
                    (1.0 / (squares / len as f64 + options.epsilon).sqrt()) as f32,
                )
            })
            .unzip();
        Self {
            gamma: gamma.to_vec(),
            beta: beta.to_vec(),
            mean,
            inv_std,
            silu: options.silu,
        }
    }

    /// Row `n·C + c`'s `(a, b)`: the normalisation and the affine step as `z = a·x + b`.
    fn affine(&self, row: usize, grouping: Grouping) -> (f32, f32) {
        let (c, group) = (row % grouping.layout.channels, grouping.group_of(row));
        let a = self.gamma[c] * self.inv_std[group];
        (a, self.beta[c] - self.mean[group] * a)
    }

    /// The forward pass.
    pub fn forward(&self, x: &[f32], grouping: Grouping) -> Vec<f32> {
        let pixels = grouping.layout.pixels;
        filled_in_parallel(x.len(), pixels, |row, y| {
            let (a, b) = self.affine(row, grouping);
            let x = &x[row * pixels..][..pixels];
            match self.silu {
                true => y.iter_mut().zip(x).for_each(|(y, &x)| *y = silu(a * x + b)),
                false => y.iter_mut().zip(x).for_each(|(y, &x)| *y = a * x + b),
            }
        })
    }

    /// The gradients of `x`, γ and β given the output's gradient `dy`.
    pub fn backward(&self, x: &[f32], dy: &[f32], grouping: Grouping) -> Gradients {
        let layout = grouping.layout;
        assert_eq!(x.len(), layout.len());
        assert_eq!(dy.len(), layout.len());
        let pixels = layout.pixels;
        // dz, and per row Σ dz and Σ dz·x̂.
        let (mut dx, sums) = filled_rows_in_parallel(x.len(), pixels, |row, dz| {
            let (a, b) = self.affine(row, grouping);
            let (x, dy) = (&x[row * pixels..][..pixels], &dy[row * pixels..][..pixels]);
            match self.silu {
                true => {
                    for ((dz, &x), &dy) in dz.iter_mut().zip(x).zip(dy) {
                        *dz = dy * silu_slope(a * x + b);
                    }
                }
                false => dz.copy_from_slice(dy),
            }
            let group = grouping.group_of(row);
            let (mean, inv_std) = (self.mean[group], self.inv_std[group]);
            (
                row_sum(dz, |v| v),
                pair_sum(dz, x, |dz, x| dz * (x - mean)) * inv_std as f64,
            )
        });
        let per_group = self.group_sums(&sums, grouping);
        dx.par_chunks_mut(pixels)
            .zip(x.par_chunks(pixels))
            .enumerate()
            .for_each(|(row, (dz, x))| {
                let group = grouping.group_of(row);
                let (mean, s) = (self.mean[group] as f64, self.inv_std[group] as f64);
                let (a, b) = per_group[group];
                let gamma = self.gamma[row % layout.channels] as f64;
                // s·(γ·dz − A − (x − μ)·s·B) = k_dz·dz + k_0 + k_x·x.
                let [k_dz, k_0, k_x] =
                    [s * gamma, s * (s * b * mean - a), -s * s * b].map(|k| k as f32);
                for (dz, &x) in dz.iter_mut().zip(x) {
                    *dz = k_dz * *dz + k_0 + k_x * x;
                }
            });
        let channels = layout.channels;
        let channel_sum = |pick: fn(&(f64, f64)) -> f64| -> Vec<f32> {
            (0..channels)
                .map(|c| sums.iter().skip(c).step_by(channels).map(pick).sum::<f64>() as f32)
                .collect()
        };
        Gradients {
            x: dx,
            gamma: channel_sum(|s| s.1),
            beta: channel_sum(|s| s.0),
        }
    }

    /// Per group of each image, `(A, B)`: the means of γ·dz and of γ·dz·x̂ over its values.
    fn group_sums(&self, row_sums: &[(f64, f64)], grouping: Grouping) -> Vec<(f64, f64)> {
        let (channels, len) = (grouping.layout.channels, grouping.group_len() as f64);
        let mut per_group = vec![(0.0, 0.0); grouping.layout.batch * grouping.groups];
        for (row, &(dz, dz_xhat)) in row_sums.iter().enumerate() {
            let gamma = self.gamma[row % channels] as f64;
            let sums = &mut per_group[grouping.group_of(row)];
            sums.0 += gamma * dz / len;
            sums.1 += gamma * dz_xhat / len;
        }
        per_group
    }
}

/// The backward pass's results.
#[derive(Debug)]
pub struct Gradients {
    /// `[N, C, P]`.
    pub x: Vec<f32>,
    /// `[C]`.
    pub gamma: Vec<f32>,
    /// `[C]`.
    pub beta: Vec<f32>,
}

/// `z·sigmoid(z)`.
fn silu(z: f32) -> f32 {
    z / (1.0 + exp(-z))
}

/// The derivative of SiLU at `z`: `sigmoid(z)·(1 + z·(1 − sigmoid(z)))`.
fn silu_slope(z: f32) -> f32 {
    let sigmoid = 1.0 / (1.0 + exp(-z));
    sigmoid * (1.0 + z * (1.0 - sigmoid))
}
