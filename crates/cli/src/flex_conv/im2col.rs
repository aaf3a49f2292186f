//! One image's patch matrix: `im2col` lays the input pixels each output pixel reads out as the
//! columns of a `[Cin·kh·kw, out_h·out_w]` matrix, `col2im` adds such a matrix back onto an
//! input-shaped image (the adjoint, for gradients and transposed convolutions).

use std::ops::Range;

/// A plain convolution (one group, no dilation, symmetric padding) of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels_in: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels_out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub out_h: usize,
    pub out_w: usize,
}

impl Geometry {
    /// The convolution of `input` `[N, Cin, H, W]` with `weight` `[Cout, Cin, kh, kw]`, or `None`
    /// if the shapes do not fit (left to burn, which reports it).
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        let [batch, channels_in, in_h, in_w] = input;
        let [channels_out, weight_in, kernel_h, kernel_w] = weight;
        let out = |size: usize, axis: usize, kernel: usize| {
            let padded = size + 2 * padding[axis];
            (stride[axis] > 0 && padded >= kernel).then(|| (padded - kernel) / stride[axis] + 1)
        };
        let geometry = Self {
            batch,
            channels_in,
            in_h,
            in_w,
            channels_out,
            kernel: [kernel_h, kernel_w],
            stride,
            padding,
            out_h: out(in_h, 0, kernel_h)?,
            out_w: out(in_w, 1, kernel_w)?,
        };
        let empty = [
            batch,
            channels_in,
            in_h,
            in_w,
            channels_out,
            kernel_h,
            kernel_w,
        ]
        .contains(&0);
        (weight_in == channels_in && !empty).then_some(geometry)
    }

    pub fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Rows of the patch matrix: `Cin·kh·kw`.
    pub fn patch_len(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    /// The outputs along `axis` (0: rows, 1: columns) whose input position for kernel tap `tap`,
    /// `output·stride + tap − padding`, lies inside the image.
    fn inside(&self, axis: usize, tap: usize) -> Range<usize> {
        let (size, out) = match axis {
            0 => (self.in_h, self.out_h),
            _ => (self.in_w, self.out_w),
        };
        let (stride, padding) = (self.stride[axis], self.padding[axis]);
        let first = padding.saturating_sub(tap).div_ceil(stride);
        let end = match (size + padding).checked_sub(tap + 1) {
            Some(last_input) => (last_input / stride + 1).min(out),
            None => 0,
        };
        first.min(end)..end
    }

    /// Calls `row(patch_row, channel, out_y, in_y, columns)` for each run of one patch-matrix row
    /// that reads inside the image: output row `out_y` of tap row `patch_row` reads input row
    /// `in_y` of `channel`, at output columns `columns`. The rest of the patch matrix reads
    /// padding.
    fn for_each_run(&self, mut run: impl FnMut(usize, usize, usize, usize, Range<usize>)) {
        let [kernel_h, kernel_w] = self.kernel;
        for channel in 0..self.channels_in {
            for i in 0..kernel_h {
                let rows = self.inside(0, i);
                for j in 0..kernel_w {
                    let columns = self.inside(1, j);
                    if columns.is_empty() {
                        continue;
                    }
                    let patch_row = (channel * kernel_h + i) * kernel_w + j;
                    for out_y in rows.clone() {
                        let in_y = out_y * self.stride[0] + i - self.padding[0];
                        run(patch_row, channel, out_y, in_y, columns.clone());
                    }
                }
            }
        }
    }

    /// The input column read by output column `out_x` at tap column `j`.
    fn in_x(&self, out_x: usize, j: usize) -> usize {
        out_x * self.stride[1] + j - self.padding[1]
    }

    /// Tap column of a patch-matrix row.
    fn tap_column(&self, patch_row: usize) -> usize {
        patch_row % self.kernel[1]
    }
}

/// Writes the patch matrix of `image` `[Cin, H, W]` into `patches` `[Cin·kh·kw, out_h·out_w]`.
pub fn im2col(image: &[f32], geometry: &Geometry, patches: &mut [f32]) {
    let (plane, pixels, width) = (geometry.in_plane(), geometry.out_pixels(), geometry.out_w);
    patches.fill(0.0);
    geometry.for_each_run(|patch_row, channel, out_y, in_y, columns| {
        let j = geometry.tap_column(patch_row);
        let source = &image[channel * plane + in_y * geometry.in_w..][..geometry.in_w];
        let target = &mut patches[patch_row * pixels + out_y * width..][..width];
        if geometry.stride[1] == 1 {
            let start = geometry.in_x(columns.start, j);
            target[columns.clone()].copy_from_slice(&source[start..start + columns.len()]);
        } else {
            for out_x in columns {
                target[out_x] = source[geometry.in_x(out_x, j)];
            }
        }
    });
}

/// Adds the patch matrix `patches` `[Cin·kh·kw, out_h·out_w]` onto `image` `[Cin, H, W]`, each
/// entry at the input pixel [`im2col`] reads it from.
pub fn col2im_add(patches: &[f32], geometry: &Geometry, image: &mut [f32]) {
    let (plane, pixels, width) = (geometry.in_plane(), geometry.out_pixels(), geometry.out_w);
    geometry.for_each_run(|patch_row, channel, out_y, in_y, columns| {
        let j = geometry.tap_column(patch_row);
        let source = &patches[patch_row * pixels + out_y * width..][..width];
        let target = &mut image[channel * plane + in_y * geometry.in_w..][..geometry.in_w];
        if geometry.stride[1] == 1 {
            let start = geometry.in_x(columns.start, j);
            let target = &mut target[start..start + columns.len()];
            for (sum, value) in target.iter_mut().zip(&source[columns]) {
                *sum += value;
            }
        } else {
            for out_x in columns {
                target[geometry.in_x(out_x, j)] += source[out_x];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patch matrix entry by entry, from the definition.
    fn naive_im2col(image: &[f32], g: &Geometry) -> Vec<f32> {
        let [kh, kw] = g.kernel;
        let mut patches = vec![f32::NAN; g.patch_len() * g.out_pixels()];
        for c in 0..g.channels_in {
            for i in 0..kh {
                for j in 0..kw {
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            let y = (oy * g.stride[0] + i) as isize - g.padding[0] as isize;
                            let x = (ox * g.stride[1] + j) as isize - g.padding[1] as isize;
                            let inside = (0..g.in_h as isize).contains(&y)
                                && (0..g.in_w as isize).contains(&x);
                            let value = match inside {
                                true => image[(c * g.in_h + y as usize) * g.in_w + x as usize],
                                false => 0.0,
                            };
                            let row = (c * kh + i) * kw + j;
                            patches[row * g.out_pixels() + oy * g.out_w + ox] = value;
                        }
                    }
                }
            }
        }
        patches
    }

    fn geometries() -> Vec<Geometry> {
        let g = |input, weight, stride, padding| Geometry::new(input, weight, stride, padding);
        vec![
            g([1, 2, 5, 4], [3, 2, 3, 3], [1, 1], [1, 1]),
            g([1, 3, 6, 6], [2, 3, 4, 4], [2, 2], [1, 1]),
            g([1, 2, 5, 7], [2, 2, 3, 2], [2, 1], [0, 2]),
            g([1, 1, 3, 3], [1, 1, 1, 1], [1, 1], [0, 0]),
            g([1, 2, 2, 3], [1, 2, 5, 5], [3, 2], [2, 2]),
            // Taps that read only padding; stride 1 in one axis only.
            g([1, 2, 2, 2], [2, 2, 7, 7], [1, 1], [3, 3]),
            g([1, 2, 6, 5], [2, 2, 3, 3], [2, 1], [1, 1]),
        ]
        .into_iter()
        .map(|geometry| geometry.expect("shapes that fit"))
        .collect()
    }

    #[test]
    fn im2col_matches_the_definition() {
        for g in geometries() {
            let image: Vec<f32> = (0..g.channels_in * g.in_plane())
                .map(|v| v as f32 + 1.0)
                .collect();
            let mut patches = vec![f32::NAN; g.patch_len() * g.out_pixels()];
            im2col(&image, &g, &mut patches);
            assert_eq!(patches, naive_im2col(&image, &g), "{g:?}");
        }
    }

    /// `col2im_add` is `im2col`'s adjoint: ⟨im2col(x), p⟩ = ⟨x, col2im(p)⟩ for all x and p, checked
    /// on unit vectors x: col2im(p)[k] is the sum of p where im2col places x[k].
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for g in geometries() {
            let len = g.patch_len() * g.out_pixels();
            let patches: Vec<f32> = (0..len).map(|v| (v % 7) as f32 - 3.0).collect();
            let mut image = vec![0.5; g.channels_in * g.in_plane()];
            col2im_add(&patches, &g, &mut image);
            for k in 0..image.len() {
                let mut unit = vec![0.0; image.len()];
                unit[k] = 1.0;
                let placed = naive_im2col(&unit, &g);
                let dot: f32 = placed.iter().zip(&patches).map(|(a, b)| a * b).sum();
                assert_eq!(image[k], 0.5 + dot, "{g:?}, pixel {k}");
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        assert!(Geometry::new([1, 2, 2, 2], [1, 2, 5, 5], [1, 1], [1, 1]).is_none());
        assert!(Geometry::new([1, 2, 4, 4], [1, 3, 3, 3], [1, 1], [1, 1]).is_none());
        assert!(Geometry::new([0, 2, 4, 4], [1, 2, 3, 3], [1, 1], [1, 1]).is_none());
        assert!(Geometry::new([1, 2, 4, 4], [1, 2, 3, 3], [0, 1], [1, 1]).is_none());
    }
}
