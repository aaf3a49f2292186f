//! Feature statistics: the mean and covariance FID compares (f64, numpy's `np.cov` with its
//! `N − 1`), and a seeded sample of the features themselves, which KID needs.

use std::collections::HashMap;
use std::path::Path;

use faer::Mat;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::EvalError;
use crate::rng::SplitMix;

/// Feature vectors, one row each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Values per vector.
    pub dims: usize,
    /// `rows × dims` values.
    pub values: Vec<f32>,
}

impl Features {
    /// Vectors held.
    pub fn rows(&self) -> usize {
        self.values.len() / self.dims.max(1)
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dims..][..self.dims]
    }
}

/// The statistics of a set of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Vectors the statistics were taken over.
    pub count: usize,
    /// Per feature, `[d]`.
    pub mean: Vec<f64>,
    /// `[d, d]` row-major, with the `N − 1` denominator.
    pub covariance: Vec<f64>,
    /// Up to the accumulator's limit, a uniform sample of the vectors (for KID); none in a file
    /// made without them.
    pub sample: Features,
}

impl FeatureStats {
    /// Values per vector.
    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// The statistics of `features`, all of them kept as the sample.
    pub fn of(features: &Features) -> Self {
        let mut accumulator = FeatureAccumulator::new(features.dims, features.rows(), 0);
        accumulator.add(&features.values);
        accumulator.finish()
    }

    /// Writes the statistics as safetensors (`mean` and `covariance` f64, `sample` f32, `count`
    /// in the metadata), atomically.
    pub fn save(&self, path: &Path) -> Result<(), EvalError> {
        let fail = |reason: String| EvalError::StatsFile {
            path: path.to_path_buf(),
            reason,
        };
        let d = self.dims();
        let bytes = |values: Vec<u8>| values;
        let mean = bytes(self.mean.iter().flat_map(|v| v.to_le_bytes()).collect());
        let covariance = bytes(
            self.covariance
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        let sample: Vec<u8> = self
            .sample
            .values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = [
            ("mean", TensorView::new(Dtype::F64, vec![d], &mean)),
            (
                "covariance",
                TensorView::new(Dtype::F64, vec![d, d], &covariance),
            ),
            (
                "sample",
                TensorView::new(Dtype::F32, vec![self.sample.rows(), d], &sample),
            ),
        ];
        let mut tensors = Vec::new();
        for (name, view) in views {
            tensors.push((name, view.map_err(|e| fail(e.to_string()))?));
        }
        let metadata = HashMap::from([
            ("count".to_string(), self.count.to_string()),
            ("format".to_string(), STATS_FORMAT.to_string()),
        ]);
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(e.to_string()))?;
        safetensors::serialize_to_file(tensors, Some(metadata), temp.path())
            .map_err(|e| fail(e.to_string()))?;
        temp.persist(path).map_err(|e| fail(e.error.to_string()))?;
        Ok(())
    }

    /// Reads statistics written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let fail = |reason: String| EvalError::StatsFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("not a stats file: {e}")))?;
        let info = metadata.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(STATS_FORMAT) {
            return Err(fail("not a statistics file written by `ddpm stats`".into()));
        }
        let count = info
            .get("count")
            .and_then(|count| count.parse().ok())
            .ok_or_else(|| fail("no image count".into()))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| fail(e.to_string()))?;
        let read = |name: &str, dtype: Dtype| {
            let view = tensors
                .tensor(name)
                .map_err(|_| fail(format!("no tensor '{name}'")))?;
            if view.dtype() != dtype {
                return Err(fail(format!("tensor '{name}' is {:?}", view.dtype())));
            }
            Ok((view.shape().to_vec(), view.data().to_vec()))
        };
        let f64s = |data: Vec<u8>| {
            data.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect::<Vec<_>>()
        };
        let (shape, mean) = read("mean", Dtype::F64)?;
        let dims = shape[0];
        let (_, covariance) = read("covariance", Dtype::F64)?;
        let (_, sample) = read("sample", Dtype::F32)?;
        let sample = sample
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Ok(Self {
            count,
            mean: f64s(mean),
            covariance: f64s(covariance),
            sample: Features {
                dims,
                values: sample,
            },
        })
    }
}

/// Marks files of [`FeatureStats::save`].
const STATS_FORMAT: &str = "ddpm-eval feature statistics v1";

/// Statistics gathered batch by batch, in memory that does not grow with the count (but for the
/// sample, which stops at its limit): the sum and the sum of outer products in f64, both taken
/// about the first batch's mean (so that large means do not cancel), and a reservoir sample.
#[derive(Debug, Clone)]
pub struct FeatureAccumulator {
    dims: usize,
    count: usize,
    shift: Option<Vec<f64>>,
    sum: Vec<f64>,
    outer: Mat<f64>,
    keep: usize,
    sample: Vec<f32>,
    rng: SplitMix,
}

impl FeatureAccumulator {
    /// For vectors of `dims` values, keeping a uniform sample of at most `keep` of them (drawn
    /// from `seed`).
    pub fn new(dims: usize, keep: usize, seed: u64) -> Self {
        Self {
            dims,
            count: 0,
            shift: None,
            sum: vec![0.0; dims],
            outer: Mat::zeros(dims, dims),
            keep,
            sample: Vec::new(),
            rng: SplitMix::new(seed),
        }
    }

    /// Vectors added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds vectors given as rows of `dims` values.
    pub fn add(&mut self, rows: &[f32]) {
        let d = self.dims;
        let n = rows.len() / d;
        if n == 0 {
            return;
        }
        let shift = self.shift.get_or_insert_with(|| {
            let mut mean = vec![0.0; d];
            for row in rows.chunks_exact(d) {
                mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
            }
            mean.iter_mut().for_each(|m| *m /= n as f64);
            mean
        });
        let centred = Mat::<f64>::from_fn(n, d, |i, j| rows[i * d + j] as f64 - shift[j]);
        for i in 0..n {
            for j in 0..d {
                self.sum[j] += centred[(i, j)];
            }
        }
        self.outer += centred.transpose() * &centred;
        for row in rows.chunks_exact(d) {
            self.keep_sample(row);
        }
    }

    /// Reservoir sampling (Vitter's algorithm R): after `count` vectors, each is in the sample
    /// with the same chance.
    fn keep_sample(&mut self, row: &[f32]) {
        self.count += 1;
        if self.sample.len() < self.keep * self.dims {
            self.sample.extend_from_slice(row);
        } else if self.keep > 0 {
            let slot = self.rng.below(self.count);
            if slot < self.keep {
                self.sample[slot * self.dims..][..self.dims].copy_from_slice(row);
            }
        }
    }

    /// The statistics. With fewer than two vectors the covariance is NaN, as numpy's.
    pub fn finish(self) -> FeatureStats {
        let (d, n) = (self.dims, self.count as f64);
        let shift = self.shift.unwrap_or_else(|| vec![0.0; d]);
        let centred_mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let mean = shift
            .iter()
            .zip(&centred_mean)
            .map(|(k, m)| k + m)
            .collect();
        let mut covariance = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let outer = self.outer[(i, j)] - n * centred_mean[i] * centred_mean[j];
                covariance[i * d + j] = outer / (n - 1.0);
            }
        }
        FeatureStats {
            count: self.count,
            mean,
            covariance,
            sample: Features {
                dims: d,
                values: self.sample,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(rows: usize, dims: usize) -> Features {
        let values = (0..rows * dims)
            .map(|i| ((i * 37 % 101) as f32 / 10.0).sin() * 3.0 + 100.0)
            .collect();
        Features { dims, values }
    }

    /// Against the textbook two-pass formulas, on features with a large common offset.
    #[test]
    fn mean_and_covariance_are_numpys() {
        let f = features(50, 6);
        let stats = FeatureStats::of(&f);
        let n = 50.0;
        for j in 0..6 {
            let mean: f64 = (0..50).map(|i| f.row(i)[j] as f64).sum::<f64>() / n;
            assert!((stats.mean[j] - mean).abs() < 1e-12);
            for k in 0..6 {
                let mean_k: f64 = (0..50).map(|i| f.row(i)[k] as f64).sum::<f64>() / n;
                let cov: f64 = (0..50)
                    .map(|i| (f.row(i)[j] as f64 - mean) * (f.row(i)[k] as f64 - mean_k))
                    .sum::<f64>()
                    / (n - 1.0);
                assert!((stats.covariance[j * 6 + k] - cov).abs() < 1e-10, "{j} {k}");
            }
        }
    }

    #[test]
    fn batches_add_up_to_the_whole_and_the_sample_stays_bounded() {
        let f = features(90, 5);
        let whole = FeatureStats::of(&f);
        let mut accumulator = FeatureAccumulator::new(5, 20, 1);
        for chunk in f.values.chunks(5 * 13) {
            accumulator.add(chunk);
        }
        let parts = accumulator.finish();
        assert_eq!(parts.count, 90);
        assert_eq!(parts.sample.rows(), 20);
        for (a, b) in whole.mean.iter().zip(&parts.mean) {
            assert!((a - b).abs() < 1e-10);
        }
        for (a, b) in whole.covariance.iter().zip(&parts.covariance) {
            assert!((a - b).abs() < 1e-9);
        }
        // Every kept vector is one of the inputs.
        for i in 0..20 {
            let row = parts.sample.row(i);
            assert!((0..90).any(|j| f.row(j) == row));
        }
    }

    #[test]
    fn statistics_round_trip_through_a_file() {
        let stats = FeatureStats::of(&features(12, 4));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.safetensors");
        stats.save(&path).unwrap();
        assert_eq!(FeatureStats::load(&path).unwrap(), stats);
        std::fs::write(&path, b"not a stats file").unwrap();
        assert!(FeatureStats::load(&path).is_err());
    }
}
