//! ReLU + BatchNorm over a batch of row-major f32 values `[N, C, P]` (`P` = H·W pixels), rows
//! of `P` values spread over rayon's threads.
//!
//! With `r = relu(x)`, per channel `c` the mean `μ` and biased variance `σ²` of `r` over the
//! batch and pixels (`M = N·P` values), and `s = 1 / sqrt(σ² + ε)`:
//! - forward: `y = γ·s·(r − μ) + offset[n, c]`, one multiply-add per value once the per-row
//!   constants are known;
//! - backward: `d offset[n, c] = Σ_p dy`, `dγ = s·Σ dy·(r − μ)`, and where `x > 0`
//!   `dx = γ·s·(dy − mean(dy) − (r − μ)·s²·mean(dy·(r − μ)))` (else 0), again one multiply-add
//!   chain per value after one pass of row sums.
//!
//! Sums run in f32 lanes along a row and in f64 across rows.

use rayon::prelude::*;

use crate::par_rows::{Layout, filled_in_parallel, pair_sum, row_sum};

/// Per channel, the mean and the biased variance of `relu(x)` over the batch and the pixels
/// (two passes: the variance sums squares of deviations, not of values).
fn relu_statistics(x: &[f32], layout: Layout) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), layout.len());
    let count = (layout.batch * layout.pixels) as f64;
    (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let mean = (layout.channel_sum(x, c, |v| v.max(0.0)) / count) as f32;
            let squares = layout.channel_sum(x, c, |v| (v.max(0.0) - mean).powi(2));
            (mean, (squares / count) as f32)
        })
        .unzip()
}

/// `relu(x)·scale[c] + shift[n, c]` (`scale: [C]`, `shift: [N, C]`).
pub fn relu_scale_shift(x: &[f32], scale: &[f32], shift: &[f32], layout: Layout) -> Vec<f32> {
    assert_eq!(x.len(), layout.len());
    assert_eq!(scale.len(), layout.channels);
    assert_eq!(shift.len(), layout.rows());
    let pixels = layout.pixels;
    filled_in_parallel(x.len(), pixels, |row, y| {
        let (a, b) = (scale[row % layout.channels], shift[row]);
        for (y, &x) in y.iter_mut().zip(&x[row * pixels..][..pixels]) {
            *y = x.max(0.0) * a + b;
        }
    })
}

/// What the forward pass kept for the backward one: per channel γ, μ and `s = 1/sqrt(σ² + ε)`.
#[derive(Debug, Clone)]
pub struct Normalization {
    pub gamma: Vec<f32>,
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl Normalization {
    /// The statistics of `relu(x)` and `gamma`, with `epsilon` added to the variance.
    pub fn of(x: &[f32], gamma: Vec<f32>, epsilon: f64, layout: Layout) -> (Self, Vec<f32>) {
        let (mean, variance) = relu_statistics(x, layout);
        let inv_std = variance
            .iter()
            .map(|&var| (1.0 / (var as f64 + epsilon).sqrt()) as f32)
            .collect();
        (
            Self {
                gamma,
                mean,
                inv_std,
            },
            variance,
        )
    }

    /// The forward pass: `γ·s·(relu(x) − μ) + offset[n, c]`.
    pub fn forward(&self, x: &[f32], offset: &[f32], layout: Layout) -> Vec<f32> {
        assert_eq!(offset.len(), layout.rows());
        let scale: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let shift: Vec<f32> = (0..layout.rows())
            .map(|row| {
                let c = row % layout.channels;
                offset[row] - self.mean[c] * scale[c]
            })
            .collect();
        relu_scale_shift(x, &scale, &shift, layout)
    }

    /// The gradients of `x`, `γ` and the offset, given the output's gradient `dy`.
    pub fn backward(&self, x: &[f32], dy: &[f32], layout: Layout) -> Gradients {
        assert_eq!(x.len(), layout.len());
        assert_eq!(dy.len(), layout.len());
        let pixels = layout.pixels;
        // Per row: Σ dy and Σ dy·(r − μ).
        let sums: Vec<(f64, f64)> = x
            .par_chunks(pixels)
            .zip(dy.par_chunks(pixels))
            .enumerate()
            .map(|(row, (x, dy))| {
                let mean = self.mean[row % layout.channels];
                let dy_sum = row_sum(dy, |v| v);
                let centered = pair_sum(x, dy, |x, dy| dy * (x.max(0.0) - mean));
                (dy_sum, centered)
            })
            .collect();
        let count = (layout.batch * pixels) as f64;
        let mut channel_sums = vec![(0f64, 0f64); layout.channels];
        for (row, &(dy_sum, centered)) in sums.iter().enumerate() {
            let sum = &mut channel_sums[row % layout.channels];
            sum.0 += dy_sum;
            sum.1 += centered;
        }
        // dx = a·dy + b + c·x where x > 0: the constants of each channel.
        let coefficients: Vec<[f32; 3]> = channel_sums
            .iter()
            .enumerate()
            .map(|(c, &(dy_sum, centered))| {
                let (gamma, mean) = (self.gamma[c] as f64, self.mean[c] as f64);
                let inv_std = self.inv_std[c] as f64;
                let k = gamma * inv_std;
                let slope = k * inv_std * inv_std * centered / count;
                [
                    k as f32,
                    (-k * dy_sum / count + slope * mean) as f32,
                    -slope as f32,
                ]
            })
            .collect();
        let dx = filled_in_parallel(x.len(), pixels, |row, dx| {
            let [a, b, c] = coefficients[row % layout.channels];
            let (x, dy) = (&x[row * pixels..][..pixels], &dy[row * pixels..][..pixels]);
            // Computed everywhere, then selected: a branch would keep it from vectorising.
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                let value = a * dy + b + c * x;
                *dx = if x > 0.0 { value } else { 0.0 };
            }
        });
        let gamma = channel_sums
            .iter()
            .zip(&self.inv_std)
            .map(|(&(_, centered), &inv_std)| (centered * inv_std as f64) as f32)
            .collect();
        let offset = sums.iter().map(|&(dy_sum, _)| dy_sum as f32).collect();
        Gradients {
            x: dx,
            gamma,
            offset,
        }
    }
}

/// The backward pass's results.
#[derive(Debug)]
pub struct Gradients {
    /// `[N, C, P]`.
    pub x: Vec<f32>,
    /// `[C]`.
    pub gamma: Vec<f32>,
    /// `[N, C]`.
    pub offset: Vec<f32>,
}
