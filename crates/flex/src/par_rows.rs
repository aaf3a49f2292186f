//! Helpers the flex kernels share for f32 buffers made of rows: their layout as a batch of
//! channels, new buffers written in parallel, and sums along rows that vectorise.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// How a batch of feature maps lies in a buffer: `batch` images of `channels` rows of `pixels`
/// values (`[N, C, H·W]`, row-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl Layout {
    /// The layout of a row-major `[N, C, H, W]` tensor.
    pub fn of([batch, channels, height, width]: [usize; 4]) -> Self {
        Self {
            batch,
            channels,
            pixels: height * width,
        }
    }

    pub fn rows(&self) -> usize {
        self.batch * self.channels
    }

    pub fn len(&self) -> usize {
        self.rows() * self.pixels
    }

    /// Σ f(v) over channel `c`'s values, its row in every image.
    pub fn channel_sum(&self, values: &[f32], c: usize, f: impl Fn(f32) -> f32 + Copy) -> f64 {
        let (channels, pixels) = (self.channels, self.pixels);
        let rows = (0..self.batch).map(|n| &values[(n * channels + c) * pixels..][..pixels]);
        rows.map(|row| row_sum(row, f)).sum()
    }
}

/// A new buffer of `len` values, written in parallel: `fill(index, chunk)` for each
/// `chunk_len`-long chunk (the last may be shorter), handed over zeroed.
///
/// `vec![0.0; len]` zeroes the whole buffer on the calling thread before the parallel part
/// starts, while the other cores wait. Here each chunk is zeroed by the thread that fills it,
/// just before it does.
pub fn filled_in_parallel(
    len: usize,
    chunk_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    filled_rows_in_parallel(len, chunk_len, fill).0
}

/// [`filled_in_parallel`] whose `fill` also returns a value per chunk, collected in order.
pub fn filled_rows_in_parallel<T: Send>(
    len: usize,
    chunk_len: usize,
    fill: impl Fn(usize, &mut [f32]) -> T + Sync,
) -> (Vec<f32>, Vec<T>) {
    let mut values = Vec::with_capacity(len);
    let results = values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk_len.max(1))
        .enumerate()
        .map(|(index, chunk)| fill(index, zeroed(chunk)))
        .collect();
    // SAFETY: every one of the first `len` values was written by `zeroed` (the chunks cover
    // them); had a `fill` panicked, the panic would have left before this line.
    unsafe { values.set_len(len) };
    (values, results)
}

/// Writes zeros to `chunk` and returns it as the initialised values it now is.
fn zeroed(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    chunk.iter_mut().for_each(|value| {
        value.write(0.0);
    });
    // SAFETY: every value was just written, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Σ f(a, b) over two rows of one length: 16 f32 lanes (which the compiler vectorises; a plain
/// f32 `sum` adds in order and does not), added up in f64.
pub fn pair_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut lanes = [0f32; 16];
    let (mut a_chunks, mut b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    for (a, b) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(a, b);
        }
    }
    let tail = a_chunks.remainder().iter().zip(b_chunks.remainder());
    let tail: f64 = tail.map(|(&a, &b)| f(a, b) as f64).sum();
    lanes.iter().map(|&lane| lane as f64).sum::<f64>() + tail
}

/// Σ f(v) over a row.
pub fn row_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    pair_sum(row, row, |v, _| f(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_filled_once_from_zero() {
        // 10 values in chunks of 4: 4 + 4 + 2.
        let values = filled_in_parallel(10, 4, |index, chunk| {
            assert!(chunk.iter().all(|&v| v == 0.0));
            for (offset, value) in chunk.iter_mut().enumerate() {
                *value += (index * 100 + offset) as f32;
            }
        });
        let expected = [0., 1., 2., 3., 100., 101., 102., 103., 200., 201.];
        assert_eq!(values, expected);
        assert!(filled_in_parallel(0, 4, |_, _| unreachable!()).is_empty());
    }

    #[test]
    fn row_sums_add_every_value_and_the_tail() {
        let row: Vec<f32> = (1..=37).map(|v| v as f32).collect();
        assert_eq!(row_sum(&row, |v| v), (37 * 38 / 2) as f64);
        assert_eq!(row_sum(&row, |v| v * v), (37 * 38 * 75 / 6) as f64);
        let ones = vec![1.0; 37];
        assert_eq!(
            pair_sum(&row, &ones, |a, b| a - b),
            (37 * 38 / 2 - 37) as f64
        );
    }
}
