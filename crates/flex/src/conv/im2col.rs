//! One image's patch matrix: `im2col` lays the input pixels each output pixel reads out as the
//! columns of a `[Cin·kh·kw, out_h·out_w]` matrix, `col2im` adds such a matrix back onto an
//! input-shaped image (the adjoint, for gradients and transposed convolutions).

use std::cell::Cell;

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

    /// What the padded image's layout depends on: input channels, height and width, padding.
    fn padded_layout(&self) -> [usize; 5] {
        let [top, left] = self.padding;
        [self.channels_in, self.in_h, self.in_w, top, left]
    }

    /// Height and width of the input with its zero border: `in + 2·padding`.
    fn padded(&self) -> [usize; 2] {
        [
            self.in_h + 2 * self.padding[0],
            self.in_w + 2 * self.padding[1],
        ]
    }
}

/// One image's patch matrix `[Cin·kh·kw, out_h·out_w]`, and the image with a zero border as
/// wide as the padding that [`Patches::im2col`] reads it from: with the border in place, each
/// output row of each kernel tap reads `out_w` pixels of one padded row, at a step of the
/// stride, with no bounds to check. One per thread; reused from image to image.
pub struct Patches {
    /// `[Cin, in_h + 2·padding, in_w + 2·padding]`.
    padded: Vec<f32>,
    /// The [`Geometry::padded_layout`] whose border `padded` holds zeros for, if any: `im2col`
    /// writes only the interior, so the next image of the same layout need not zero it again.
    zero_border: Option<[usize; 5]>,
    /// `[Cin·kh·kw, out_h·out_w]`.
    pub matrix: Vec<f32>,
}

thread_local! {
    /// The buffers of this thread's last scratch [`Patches`], for its next one.
    static SPARE: Cell<Option<Patches>> = const { Cell::new(None) };
}

impl Patches {
    /// Scratch patches for `geometry`: this thread's spare buffers, resized, if it has some (no
    /// fresh zeroed allocation per convolution). The
    /// matrix's values are left as they are: [`Patches::im2col`] writes every one, and the
    /// products that fill it for [`Patches::col2im_add`] overwrite it.
    pub fn scratch(geometry: &Geometry) -> Self {
        let [height, width] = geometry.padded();
        let mut patches = SPARE.take().unwrap_or(Self {
            padded: Vec::new(),
            zero_border: None,
            matrix: Vec::new(),
        });
        patches
            .padded
            .resize(geometry.channels_in * height * width, 0.0);
        let matrix_len = geometry.patch_len() * geometry.out_pixels();
        patches.matrix.resize(matrix_len, 0.0);
        patches
    }

    /// Keeps the buffers for this thread's next [`Patches::scratch`]. (A scratch taken inside
    /// another on the same thread, as rayon may nest them, finds none and allocates its own.)
    pub fn recycle(self) {
        SPARE.set(Some(self));
    }

    /// Writes the patch matrix of `image` `[Cin, H, W]`.
    pub fn im2col(&mut self, image: &[f32], geometry: &Geometry) {
        let [height, width] = geometry.padded();
        let [top, left] = geometry.padding;
        let layout = geometry.padded_layout();
        if self.zero_border != Some(layout) {
            self.padded.fill(0.0);
            self.zero_border = Some(layout);
        }
        let planes = self.padded.chunks_exact_mut(height * width);
        for (plane, channel) in planes.zip(image.chunks_exact(geometry.in_plane())) {
            let rows = plane[top * width..].chunks_exact_mut(width);
            for (row, pixels) in rows.zip(channel.chunks_exact(geometry.in_w)) {
                row[left..][..geometry.in_w].copy_from_slice(pixels);
            }
        }
        runs(geometry).gather(&self.padded, &mut self.matrix, geometry);
    }

    /// Adds the patch matrix onto `image` `[Cin, H, W]`, each entry at the pixel
    /// [`Patches::im2col`] reads it from (its adjoint).
    pub fn col2im_add(&mut self, geometry: &Geometry, image: &mut [f32]) {
        let [height, width] = geometry.padded();
        let [top, left] = geometry.padding;
        self.padded.fill(0.0);
        self.zero_border = None;
        runs(geometry).scatter(&self.matrix, &mut self.padded, geometry);
        let planes = self.padded.chunks_exact(height * width);
        for (plane, channel) in planes.zip(image.chunks_exact_mut(geometry.in_plane())) {
            let rows = plane[top * width..].chunks_exact(width);
            for (row, pixels) in rows.zip(channel.chunks_exact_mut(geometry.in_w)) {
                let sums = pixels.iter_mut().zip(&row[left..][..geometry.in_w]);
                sums.for_each(|(pixel, value)| *pixel += value);
            }
        }
    }
}

/// The patch-matrix walk, compiled for a fixed output width `W` and column stride `S` (0: read
/// from the geometry): the common widths and strides get copies and sums of a constant length,
/// which compile to a few vector moves instead of a `memcpy` call per run of 4–16 pixels.
struct Runs<const W: usize, const S: usize>;

/// The walk for `geometry`'s output width and column stride.
fn runs(geometry: &Geometry) -> &'static dyn Walk {
    match (geometry.out_w, geometry.stride[1]) {
        (4, 1) => &Runs::<4, 1>,
        (8, 1) => &Runs::<8, 1>,
        (16, 1) => &Runs::<16, 1>,
        (32, 1) => &Runs::<32, 1>,
        (4, 2) => &Runs::<4, 2>,
        (8, 2) => &Runs::<8, 2>,
        (16, 2) => &Runs::<16, 2>,
        (32, 2) => &Runs::<32, 2>,
        _ => &Runs::<0, 0>,
    }
}

trait Walk: Sync {
    /// `matrix` ← the runs each patch row reads from `padded`.
    fn gather(&self, padded: &[f32], matrix: &mut [f32], geometry: &Geometry);
    /// `padded` += each patch row's runs, where [`Walk::gather`] read them.
    fn scatter(&self, matrix: &[f32], padded: &mut [f32], geometry: &Geometry);
}

impl<const W: usize, const S: usize> Runs<W, S> {
    /// Calls `run(patch_row_run, padded_offset)` for each output row of each kernel tap: the
    /// run's `out_w` entries read `padded` from `padded_offset` on, at a step of the stride.
    fn for_each(geometry: &Geometry, mut run: impl FnMut(usize, usize)) {
        let [height, width] = geometry.padded();
        let [kernel_h, kernel_w] = geometry.kernel;
        let out_w = Self::width(geometry);
        let mut patch_row = 0;
        for channel in 0..geometry.channels_in {
            for i in 0..kernel_h {
                for j in 0..kernel_w {
                    for out_y in 0..geometry.out_h {
                        let in_y = out_y * geometry.stride[0] + i;
                        let offset = (channel * height + in_y) * width + j;
                        run((patch_row + out_y) * out_w, offset);
                    }
                    patch_row += geometry.out_h;
                }
            }
        }
    }

    fn width(geometry: &Geometry) -> usize {
        if W == 0 { geometry.out_w } else { W }
    }

    fn stride(geometry: &Geometry) -> usize {
        if S == 0 { geometry.stride[1] } else { S }
    }
}

impl<const W: usize, const S: usize> Walk for Runs<W, S> {
    fn gather(&self, padded: &[f32], matrix: &mut [f32], geometry: &Geometry) {
        let (width, stride) = (Self::width(geometry), Self::stride(geometry));
        let span = (width - 1) * stride + 1;
        Self::for_each(geometry, |at, from| {
            let (target, source) = (&mut matrix[at..][..width], &padded[from..][..span]);
            match stride {
                1 => target.copy_from_slice(source),
                _ => {
                    let read = source.iter().step_by(stride);
                    target.iter_mut().zip(read).for_each(|(t, s)| *t = *s);
                }
            }
        });
    }

    fn scatter(&self, matrix: &[f32], padded: &mut [f32], geometry: &Geometry) {
        let (width, stride) = (Self::width(geometry), Self::stride(geometry));
        let span = (width - 1) * stride + 1;
        Self::for_each(geometry, |at, to| {
            let (source, target) = (&matrix[at..][..width], &mut padded[to..][..span]);
            let sums = target.iter_mut().step_by(stride).zip(source);
            sums.for_each(|(sum, value)| *sum += value);
        });
    }
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
            let mut patches = Patches::scratch(&g);
            patches.matrix.fill(f32::NAN);
            patches.im2col(&image, &g);
            assert_eq!(patches.matrix, naive_im2col(&image, &g), "{g:?}");
        }
    }

    /// One scratch, reused as a thread reuses it: images one after another, a `col2im_add` (which
    /// dirties the border) between two of them, and geometries whose borders lie elsewhere.
    #[test]
    fn reused_patches_still_match_the_definition() {
        let geometries = geometries();
        for (index, g) in geometries.iter().chain(&geometries).enumerate() {
            let mut patches = Patches::scratch(g);
            for image in 0..3 {
                let image: Vec<f32> = (0..g.channels_in * g.in_plane())
                    .map(|v| (v * (image + 2) + index) as f32)
                    .collect();
                patches.im2col(&image, g);
                assert_eq!(patches.matrix, naive_im2col(&image, g), "{g:?}");
                patches.matrix.fill(1.0);
                patches.col2im_add(g, &mut vec![0.0; g.channels_in * g.in_plane()]);
            }
            patches.recycle();
        }
    }

    /// `col2im_add` is `im2col`'s adjoint: ⟨im2col(x), p⟩ = ⟨x, col2im(p)⟩ for all x and p, checked
    /// on unit vectors x: col2im(p)[k] is the sum of p where im2col places x[k].
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for g in geometries() {
            let len = g.patch_len() * g.out_pixels();
            let mut scratch = Patches::scratch(&g);
            scratch.matrix = (0..len).map(|v| (v % 7) as f32 - 3.0).collect();
            let patches = scratch.matrix.clone();
            let mut image = vec![0.5; g.channels_in * g.in_plane()];
            scratch.col2im_add(&g, &mut image);
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
