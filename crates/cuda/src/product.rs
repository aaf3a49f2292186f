//! Batched matrix products with their own backward pass, and the paper U-Net's attention on
//! them.
//!
//! `product(a, b, ta, tb)` is `op(a) · op(b)` for each of a batch of matrices, `op` a transpose
//! where its flag is set, so that attention's `qᵀ·k` and `v·wᵀ` and every gradient of a product
//! are products of the stored tensors, never a transposed copy. cuBLAS takes the flags as they
//! are ([`Cublas`]); burn-cubecl's matmul at its fixed strategy takes transposed views
//! ([`FixedProduct`]).

use std::marker::PhantomData;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::kernel::matmul::{MatmulStrategy, matmul};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use half::bf16;

use crate::device::{Call, Primitive, contiguous, dims, empty_like};
use crate::library::with_handles;
use crate::{Gpu, GpuAutodiff};

/// One library's batched product of `[N, r, c]` primitives of one dtype (f32 or bf16).
pub(crate) trait ProductKernels: Send + Sync + std::fmt::Debug + 'static {
    /// `op(a) · op(b)`, `[N, M, P]`.
    fn product(a: Primitive, b: Primitive, ta: bool, tb: bool) -> Primitive;
}

/// The sizes `(M, K, P)` of `op(a) · op(b)`.
fn sizes(a: [usize; 3], b: [usize; 3], ta: bool, tb: bool) -> (usize, usize, usize) {
    let (m, k) = if ta { (a[2], a[1]) } else { (a[1], a[2]) };
    let p = if tb { b[1] } else { b[2] };
    (m, k, p)
}

/// cuBLAS's strided batched GEMM: f32 with TF32 tensor cores allowed, bf16 with f32
/// accumulation.
#[derive(Debug)]
pub(crate) struct Cublas;

impl ProductKernels for Cublas {
    fn product(a: Primitive, b: Primitive, ta: bool, tb: bool) -> Primitive {
        let (a, b) = (contiguous(a), contiguous(b));
        let (sa, sb) = (dims::<3>(&a), dims::<3>(&b));
        let shape = GemmShape::of(sa, sb, ta, tb);
        let out = empty_like(&a, [sa[0], shape.n as usize, shape.m as usize], a.dtype);
        let index = a.device.index;
        with_handles(index, |handles| {
            let stream = handles.stream.clone();
            let blas = &handles.blas;
            Call::on(vec![&b, &a, &out]).run(&stream, |raws, _| match out.dtype {
                DType::F32 => {
                    let (x, y, mut z) = (raws[0].typed(), raws[1].typed(), raws[2].typed());
                    // SAFETY: the sizes describe these packed f32 tensors.
                    unsafe { blas.gemm_strided_batched(shape.config(1.0f32, 0.0), &x, &y, &mut z) }
                }
                DType::BF16 => {
                    let (x, y, mut z) = (raws[0].typed(), raws[1].typed(), raws[2].typed());
                    // SAFETY: as above, bf16.
                    unsafe {
                        blas.gemm_strided_batched(
                            shape.config(bf16::ONE, bf16::ZERO),
                            &x,
                            &y,
                            &mut z,
                        )
                    }
                }
                other => unreachable!("the entries hand {other:?} to burn"),
            })
        });
        out
    }
}

/// A GEMM's column-major sizes, for either element type.
#[derive(Debug, Clone, Copy)]
struct GemmShape {
    transa: cublasOperation_t,
    transb: cublasOperation_t,
    m: i32,
    n: i32,
    k: i32,
    lda: i32,
    ldb: i32,
    ldc: i32,
    strides: [i64; 3],
    batch: i32,
}

impl GemmShape {
    /// Row-major `C = op(A)·op(B)` for `[N, r, c]` operands of shapes `sa` and `sb` is
    /// column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`: cuBLAS multiplies B's storage by A's, each
    /// transposed where its flag says, and writes `C` row-major (`m = P` columns of `n = M`).
    fn of(sa: [usize; 3], sb: [usize; 3], ta: bool, tb: bool) -> Self {
        let (m, k, p) = sizes(sa, sb, ta, tb);
        let operation = |t: bool| match t {
            true => cublasOperation_t::CUBLAS_OP_T,
            false => cublasOperation_t::CUBLAS_OP_N,
        };
        let int = |value: usize| i32::try_from(value).expect("a size cuBLAS can index");
        Self {
            transa: operation(tb),
            transb: operation(ta),
            m: int(p),
            n: int(m),
            k: int(k),
            lda: int(if tb { k } else { p }),
            ldb: int(if ta { m } else { k }),
            ldc: int(p),
            strides: [(k * p) as i64, (m * k) as i64, (m * p) as i64],
            batch: int(sa[0]),
        }
    }

    fn config<T>(&self, alpha: T, beta: T) -> StridedBatchedConfig<T> {
        StridedBatchedConfig {
            gemm: GemmConfig {
                transa: self.transa,
                transb: self.transb,
                m: self.m,
                n: self.n,
                k: self.k,
                alpha,
                lda: self.lda,
                ldb: self.ldb,
                beta,
                ldc: self.ldc,
            },
            batch_size: self.batch,
            stride_a: self.strides[0],
            stride_b: self.strides[1],
            stride_c: self.strides[2],
        }
    }
}

/// burn-cubecl's matmul at its fixed strategy (no candidates benchmarked).
#[derive(Debug)]
pub(crate) struct FixedProduct;

impl ProductKernels for FixedProduct {
    fn product(a: Primitive, b: Primitive, ta: bool, tb: bool) -> Primitive {
        let view = |t: Primitive, transposed: bool| match transposed {
            true => burn_cubecl::ops::permute(t, &[0, 2, 1]),
            false => t,
        };
        let dtype = a.dtype;
        matmul(view(a, ta), view(b, tb), None, MatmulStrategy::Cube, dtype)
            .expect("burn-cubecl's matmul takes any batched product")
    }
}

/// A product and the backward step that goes with it.
#[derive(Debug)]
pub(crate) struct Step<K> {
    ta: bool,
    tb: bool,
    kernels: PhantomData<fn() -> K>,
}

impl<K: ProductKernels> Backward<Gpu, 2> for Step<K> {
    /// The two operands' nodes.
    type State = (NodeId, NodeId);

    /// With `Ã = op(a)`, `B̃ = op(b)`: `dÃ = dC·B̃ᵀ`, `dB̃ = Ãᵀ·dC`, each written as a product
    /// of stored tensors (transposed back where the operand was).
    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (a_state, b_state) = ops.state;
        let a: Primitive = checkpointer.retrieve_node_output(a_state);
        let b: Primitive = checkpointer.retrieve_node_output(b_state);
        let dc = grads.consume::<Gpu>(&ops.node);
        let [a_node, b_node] = ops.parents;
        let (ta, tb) = (self.ta, self.tb);
        if let Some(node) = a_node {
            let grad = match ta {
                false => K::product(dc.clone(), b.clone(), false, !tb),
                true => K::product(b.clone(), dc.clone(), tb, true),
            };
            grads.register::<Gpu>(node.id, grad);
        }
        if let Some(node) = b_node {
            let grad = match tb {
                false => K::product(a, dc, !ta, false),
                true => K::product(dc, a, true, ta),
            };
            grads.register::<Gpu>(node.id, grad);
        }
    }
}

/// The two backends the products serve (see `conv::OwnConv`).
pub(crate) trait OwnProduct: burn::tensor::backend::Backend {
    fn product<K: ProductKernels>(
        step: Step<K>,
        a: Tensor<Self, 3>,
        b: Tensor<Self, 3>,
    ) -> Tensor<Self, 3>;
}

impl OwnProduct for Gpu {
    fn product<K: ProductKernels>(
        step: Step<K>,
        a: Tensor<Self, 3>,
        b: Tensor<Self, 3>,
    ) -> Tensor<Self, 3> {
        let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
        Tensor::from_primitive(TensorPrimitive::Float(K::product(a, b, step.ta, step.tb)))
    }
}

impl OwnProduct for GpuAutodiff {
    fn product<K: ProductKernels>(
        step: Step<K>,
        a: Tensor<Self, 3>,
        b: Tensor<Self, 3>,
    ) -> Tensor<Self, 3> {
        let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
        let c = K::product(a.primitive.clone(), b.primitive.clone(), step.ta, step.tb);
        Tensor::from_primitive(TensorPrimitive::Float(crate::tracked::record(
            step, &a, &b, c,
        )))
    }
}

/// `op(a) · op(b)` by `K`.
fn product<B: OwnProduct, K: ProductKernels>(
    a: Tensor<B, 3>,
    b: Tensor<B, 3>,
    ta: bool,
    tb: bool,
) -> Tensor<B, 3> {
    let step = Step::<K> {
        ta,
        tb,
        kernels: PhantomData,
    };
    B::product(step, a, b)
}

/// The paper U-Net's attention ([`ddpm_ops::AttentionFn`]) with both products by `K`: the
/// scores `qᵀ·k` `[N, L, L]`, burn's softmax over the keys, then `v·wᵀ`.
pub(crate) fn attention<B: OwnProduct, K: ProductKernels>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
) -> Tensor<B, 3> {
    if !matches!(q.dtype(), DType::F32 | DType::BF16) {
        return ddpm_ops::attention(q, k, v);
    }
    attention_in::<B, K>(q, k, v, |t| t)
}

/// [`attention`] with bf16 products and the softmax in the inputs' type (f32).
pub(crate) fn attention_bf16<B: OwnProduct, K: ProductKernels>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
) -> Tensor<B, 3> {
    attention_in::<B, K>(q, k, v, ddpm_ops::bf16)
}

/// The attention with the products' operands made by `operand` and the softmax in `q`'s type.
fn attention_in<B: OwnProduct, K: ProductKernels>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    operand: fn(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    let dtype = q.dtype();
    let channels = q.dims()[1];
    let scores = product::<B, K>(operand(q), operand(k), true, false).cast(dtype);
    let weights = softmax(scores.mul_scalar((channels as f64).powf(-0.5)), 2);
    product::<B, K>(operand(v), operand(weights), false, true).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cuBLAS's strided batched GEMM as its documentation defines it, column-major:
    /// `C[i + j·ldc] = Σ_l op(A)[i, l] · op(B)[l, j]` for each batch.
    fn column_major_gemm(g: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32]) {
        let at = |t: cublasOperation_t, data: &[f32], ld: i32, row: usize, col: usize| match t {
            cublasOperation_t::CUBLAS_OP_N => data[row + col * ld as usize],
            _ => data[col + row * ld as usize],
        };
        let [sa, sb, sc] = g.strides.map(|s| s as usize);
        for batch in 0..g.batch as usize {
            for i in 0..g.m as usize {
                for j in 0..g.n as usize {
                    let sum = (0..g.k as usize)
                        .map(|l| {
                            at(g.transa, &a[batch * sa..], g.lda, i, l)
                                * at(g.transb, &b[batch * sb..], g.ldb, l, j)
                        })
                        .sum();
                    c[batch * sc + i + j * g.ldc as usize] = sum;
                }
            }
        }
    }

    /// The shape handed to cuBLAS gives the row-major product of the stored operands, for every
    /// pair of transposition flags.
    #[test]
    fn the_gemm_shape_computes_the_row_major_product() {
        let (n, m, k, p) = (2, 3, 4, 5);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let sa = if ta { [n, k, m] } else { [n, m, k] };
            let sb = if tb { [n, p, k] } else { [n, k, p] };
            let a: Vec<f32> = (0..n * m * k).map(|i| (i * 7 % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n * k * p).map(|i| (i * 5 % 13) as f32 - 6.0).collect();
            let op =
                |data: &[f32], shape: [usize; 3], t: bool, batch: usize, r: usize, c: usize| {
                    let (rows, cols) = (shape[1], shape[2]);
                    let base = batch * rows * cols;
                    if t {
                        data[base + c * cols + r]
                    } else {
                        data[base + r * cols + c]
                    }
                };
            let shape = GemmShape::of(sa, sb, ta, tb);
            let mut c = vec![0.0; n * m * p];
            // cuBLAS's A is our b, its B our a.
            column_major_gemm(&shape, &b, &a, &mut c);
            for batch in 0..n {
                for i in 0..m {
                    for j in 0..p {
                        let expected: f32 = (0..k)
                            .map(|l| op(&a, sa, ta, batch, i, l) * op(&b, sb, tb, batch, l, j))
                            .sum();
                        let ours = c[batch * m * p + i * p + j];
                        assert_eq!(ours, expected, "ta {ta} tb {tb} at {batch},{i},{j}");
                    }
                }
            }
        }
    }

    #[test]
    fn sizes_follow_the_flags() {
        assert_eq!(sizes([2, 3, 4], [2, 4, 5], false, false), (3, 4, 5));
        assert_eq!(sizes([2, 4, 3], [2, 4, 5], true, false), (3, 4, 5));
        assert_eq!(sizes([2, 3, 4], [2, 5, 4], false, true), (3, 4, 5));
        assert_eq!(sizes([2, 4, 3], [2, 5, 4], true, true), (3, 4, 5));
    }
}
