//! One convolution's passes for F(4×4, 3×3): the transforms of kernels, input tiles and output
//! (gradient) tiles, a task per channel, and the products, a task per transformed position.

use gemm::Parallelism;
use rayon::prelude::*;

use super::buffers::{Scratch, Workspace, refill};
use super::tile::{A, INPUT, KERNEL, KERNEL_ADJOINT, M, OUTPUT, OUTPUT_ADJOINT, sandwich};
use crate::conv::im2col::Geometry;
use crate::par_rows::filled_in_parallel;
use crate::product::{Operand, matmul};

/// One convolution's tiling: the output maps cut into `M×M` tiles (the last row and column may
/// overhang), numbered image by image, row by row.
pub struct Plan {
    g: Geometry,
    /// Tiles per image down and across.
    tiles: [usize; 2],
}

impl Plan {
    /// Positions in a transformed tile: one matrix product each.
    const POSITIONS: usize = A * A;

    pub fn new(g: &Geometry) -> Self {
        Self {
            g: *g,
            tiles: [g.out_h.div_ceil(M), g.out_w.div_ceil(M)],
        }
    }

    fn per_image(&self) -> usize {
        self.tiles[0] * self.tiles[1]
    }

    /// `T`, the batch's tiles.
    fn count(&self) -> usize {
        self.g.batch * self.per_image()
    }

    pub fn forward(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        Workspace::with(|[kernels, inputs, products]| {
            self.kernels(weight, kernels);
            self.inputs(x, inputs);
            self.products(kernels, inputs, products);
            self.outputs(products, bias)
        })
    }

    pub fn weight_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        Workspace::with(|[inputs, output_grads, products]| {
            self.inputs(x, inputs);
            self.output_grads(dy, output_grads);
            self.kernel_grad_products(output_grads, inputs, products);
            self.kernel_grads(products)
        })
    }

    /// `U = G g Gᵀ` of each kernel, `[Cout, A², Cin]`: a task per output channel.
    fn kernels(&self, weight: &[f32], kernels: &mut Vec<f32>) {
        let (cin, cout) = (self.g.channels_in, self.g.channels_out);
        refill(
            kernels,
            cout * Self::POSITIONS * cin,
            Self::POSITIONS * cin,
            |co, out| {
                Scratch::with(|s| {
                    // The nine taps as rows over the input channels.
                    s.tiles.resize(9 * cin, 0.0);
                    let kernels = weight[co * cin * 9..][..cin * 9].chunks_exact(9);
                    for (ci, taps) in kernels.enumerate() {
                        for (tap, &value) in taps.iter().enumerate() {
                            s.tiles[tap * cin + ci] = value;
                        }
                    }
                    sandwich(
                        &KERNEL,
                        (&s.tiles, cin),
                        &KERNEL,
                        cin,
                        &mut s.mid,
                        (out, cin),
                    );
                })
            },
        )
    }

    /// `V = Bᵀ d B` of each input tile, `[Cin, A², T]`: a task per input channel.
    fn inputs(&self, x: &[f32], inputs: &mut Vec<f32>) {
        let g = &self.g;
        let count = self.count();
        let len = Self::POSITIONS * count;
        refill(inputs, g.channels_in * len, len, |c, out| {
            Scratch::with(|s| {
                let padded = self.padded_channel(x, c, &mut s.padded);
                s.tiles.resize(len, 0.0);
                self.gather_tiles(padded, &mut s.tiles);
                sandwich(
                    &INPUT,
                    (&s.tiles, count),
                    &INPUT,
                    count,
                    &mut s.mid,
                    (out, count),
                );
            })
        })
    }

    /// Channel `c` of every image with a zero border, `[N, rows·M + 2, columns·M + 2]`: one
    /// pixel of padding, and more at the bottom and right where the last tiles overhang. Output
    /// pixel (y, x) reads padded rows y..y+3 and columns x..x+3.
    fn padded_channel<'a>(&self, x: &[f32], c: usize, padded: &'a mut Vec<f32>) -> &'a [f32] {
        let g = &self.g;
        let [height, width] = self.padded_size();
        padded.clear();
        padded.resize(g.batch * height * width, 0.0);
        for (image, target) in padded.chunks_exact_mut(height * width).enumerate() {
            let plane = &x[(image * g.channels_in + c) * g.in_plane()..][..g.in_plane()];
            for (y, row) in plane.chunks_exact(g.in_w).enumerate() {
                target[(y + 1) * width + 1..][..g.in_w].copy_from_slice(row);
            }
        }
        padded
    }

    fn padded_size(&self) -> [usize; 2] {
        [self.tiles[0] * M + 2, self.tiles[1] * M + 2]
    }

    /// Writes position `(i, j)` of every `A×A` input tile of `padded` (tiles `M` apart) as row
    /// `i·A + j` of `tiles`, `T` values long.
    fn gather_tiles(&self, padded: &[f32], tiles: &mut [f32]) {
        let ([height, width], count, columns) = (self.padded_size(), self.count(), self.tiles[1]);
        for image in 0..self.g.batch {
            for row in 0..self.tiles[0] {
                let first = image * self.per_image() + row * columns;
                for (i, j) in (0..A).flat_map(|i| (0..A).map(move |j| (i, j))) {
                    let source = &padded[(image * height + row * M + i) * width + j..];
                    let target = &mut tiles[(i * A + j) * count + first..][..columns];
                    for (column, value) in target.iter_mut().enumerate() {
                        *value = source[column * M];
                    }
                }
            }
        }
    }

    /// `M_ξ = U_ξ × V_ξ`, `[A², Cout, T]`: a task per position.
    fn products(&self, kernels: &[f32], inputs: &[f32], products: &mut Vec<f32>) {
        let (cin, cout, count) = (self.g.channels_in, self.g.channels_out, self.count());
        refill(
            products,
            Self::POSITIONS * cout * count,
            cout * count,
            |position, out| {
                let u = Operand::strided(&kernels[position * cin..], Self::POSITIONS * cin, 1);
                let v = Operand::strided(&inputs[position * count..], Self::POSITIONS * count, 1);
                matmul(out, [cout, count, cin], u, v, false, Parallelism::None);
            },
        )
    }

    /// `y = Aᵀ M A` of each tile plus the bias, `[N, Cout, H, W]`: a task per output channel,
    /// its maps in every image.
    fn outputs(&self, products: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let g = &self.g;
        let (count, columns) = (self.count(), self.tiles[1]);
        let plane = g.out_pixels();
        let mut y = filled_in_parallel(g.batch * g.channels_out * plane, plane, |_, _| {});
        let mut maps: Vec<Vec<&mut [f32]>> = (0..g.channels_out).map(|_| Vec::new()).collect();
        for (index, map) in y.chunks_exact_mut(plane).enumerate() {
            maps[index % g.channels_out].push(map);
        }
        maps.into_par_iter().enumerate().for_each(|(co, mut maps)| {
            Scratch::with(|s| {
                let bias = bias.map_or(0.0, |bias| bias[co]);
                s.tiles.resize(M * M * count, 0.0);
                let x = (&products[co * count..], g.channels_out * count);
                sandwich(
                    &OUTPUT,
                    x,
                    &OUTPUT,
                    count,
                    &mut s.mid,
                    (&mut s.tiles[..], count),
                );
                for (image, map) in maps.iter_mut().enumerate() {
                    for row in 0..self.tiles[0] {
                        let first = image * self.per_image() + row * columns;
                        for (i, j) in (0..M).flat_map(|i| (0..M).map(move |j| (i, j))) {
                            let (y, inside) = (row * M + i, g.out_w.saturating_sub(j).div_ceil(M));
                            if y >= g.out_h || inside == 0 {
                                continue;
                            }
                            let source = &s.tiles[(i * M + j) * count + first..][..inside];
                            let target = &mut map[y * g.out_w + j..];
                            for (column, &value) in source.iter().enumerate() {
                                target[column * M] = value + bias;
                            }
                        }
                    }
                }
            })
        });
        y
    }

    /// `dM = A dy Aᵀ` of each output-gradient tile (zero where a tile overhangs the map),
    /// `[Cout, A², T]`: a task per output channel.
    fn output_grads(&self, dy: &[f32], output_grads: &mut Vec<f32>) {
        let g = &self.g;
        let (count, columns) = (self.count(), self.tiles[1]);
        let plane = g.out_pixels();
        let len = Self::POSITIONS * count;
        refill(output_grads, g.channels_out * len, len, |co, out| {
            Scratch::with(|s| {
                s.tiles.resize(M * M * count, 0.0);
                for image in 0..g.batch {
                    let map = &dy[(image * g.channels_out + co) * plane..][..plane];
                    for row in 0..self.tiles[0] {
                        let first = image * self.per_image() + row * columns;
                        for (i, j) in (0..M).flat_map(|i| (0..M).map(move |j| (i, j))) {
                            let target = &mut s.tiles[(i * M + j) * count + first..][..columns];
                            let (y, inside) = (row * M + i, g.out_w.saturating_sub(j).div_ceil(M));
                            target.fill(0.0);
                            if y < g.out_h && inside > 0 {
                                let source = &map[y * g.out_w + j..];
                                for (column, value) in target[..inside].iter_mut().enumerate() {
                                    *value = source[column * M];
                                }
                            }
                        }
                    }
                }
                sandwich(
                    &OUTPUT_ADJOINT,
                    (&s.tiles, count),
                    &OUTPUT_ADJOINT,
                    count,
                    &mut s.mid,
                    (out, count),
                );
            })
        })
    }

    /// `dU_ξ = dM_ξ × V_ξᵀ`, `[A², Cout, Cin]`: a task per position.
    fn kernel_grad_products(&self, output_grads: &[f32], inputs: &[f32], products: &mut Vec<f32>) {
        let (cin, cout, count) = (self.g.channels_in, self.g.channels_out, self.count());
        let step = Self::POSITIONS * count;
        refill(
            products,
            Self::POSITIONS * cout * cin,
            cout * cin,
            |position, out| {
                let v = Operand::strided(&inputs[position * count..], step, 1);
                let dm = Operand::strided(&output_grads[position * count..], 1, step);
                matmul(out, [cin, cout, count], v, dm, false, Parallelism::None);
            },
        )
    }

    /// `dg = Gᵀ dU G` of each kernel, `[Cout, Cin, 3, 3]`: a task per output channel.
    fn kernel_grads(&self, products: &[f32]) -> Vec<f32> {
        let (cin, cout) = (self.g.channels_in, self.g.channels_out);
        filled_in_parallel(cout * cin * 9, cin * 9, |co, out| {
            Scratch::with(|s| {
                // This output channel's column of each position's `[Cin, Cout]` gradient.
                s.padded.resize(Self::POSITIONS * cin, 0.0);
                for (position, row) in s.padded.chunks_exact_mut(cin).enumerate() {
                    let column = &products[position * cin * cout + co..];
                    for (ci, value) in row.iter_mut().enumerate() {
                        *value = column[ci * cout];
                    }
                }
                s.tiles.resize(9 * cin, 0.0);
                let x = (&s.padded[..], cin);
                sandwich(
                    &KERNEL_ADJOINT,
                    x,
                    &KERNEL_ADJOINT,
                    cin,
                    &mut s.mid,
                    (&mut s.tiles[..], cin),
                );
                for (ci, taps) in out.chunks_exact_mut(9).enumerate() {
                    for (tap, value) in taps.iter_mut().enumerate() {
                        *value = s.tiles[tap * cin + ci];
                    }
                }
            })
        })
    }
}
