//! Mixed precision as a property of a table: the heavy entries (convolutions and attention)
//! computed in bf16, everything else in f32.
//!
//! burn has no autocast. Its `cast` is differentiable (the backward pass casts the gradient
//! back), so an entry that casts its inputs to bf16, computes, and casts the result back to the
//! input's type gives bf16 products on tensor cores while the weights, their gradients, Adam's
//! moments, the norms' statistics and the loss stay f32: mixed precision, with f32 master weights.
//!
//! A function pointer cannot capture the entry it would wrap, so the heavy entries are named by
//! a type ([`HeavyKernels`]) and [`Ops::with_heavy`] instantiates them in a precision: a table
//! in bf16 runs *its own* kernels on bf16 values, never burn's in their place.

use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{FloatDType, Tensor, backend::Backend, module};
use serde::{Deserialize, Serialize};

use crate::{Ops, attention, gather};

/// The number format of a table's heavy operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32 (on a GPU, f32 products may use TF32 tensor cores).
    #[default]
    F32,
    /// Convolutions, transposed convolutions and attention in bf16; the rest in f32.
    Bf16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision '{other}' (expected f32 or bf16)"
            )),
        }
    }
}

/// A kernel set's heavy entries, named by a type so that a table can run them in another
/// precision. Each must accept f32 and bf16 inputs and compute in its inputs' type (bf16 with
/// f32 accumulation where the hardware has it).
pub trait HeavyKernels<B: Backend> {
    /// A 2-D convolution ([`Conv2dFn`](crate::Conv2dFn)).
    fn conv2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: PaddedConvOptions<2>,
    ) -> Tensor<B, 4>;

    /// A 2-D transposed convolution ([`ConvTranspose2dFn`](crate::ConvTranspose2dFn)).
    fn conv_transpose2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: ConvTransposeOptions<2>,
    ) -> Tensor<B, 4>;

    /// Single-head attention ([`AttentionFn`](crate::AttentionFn)).
    fn attention(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3>;

    /// The attention in bf16 with a result in the inputs' type: by default [`Self::attention`]
    /// on bf16 inputs; a kernel set whose products can write f32 (scores for an f32 softmax)
    /// overrides it.
    fn attention_bf16(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = q.dtype();
        Self::attention(bf16(q), bf16(k), bf16(v)).cast(dtype)
    }
}

/// burn's own operations (on a GPU, cubecl's autotuned kernels).
#[derive(Debug, Clone, Copy, Default)]
pub struct BurnHeavy;

impl<B: Backend> HeavyKernels<B> for BurnHeavy {
    fn conv2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: PaddedConvOptions<2>,
    ) -> Tensor<B, 4> {
        module::conv2d(x, weight, bias, options)
    }

    fn conv_transpose2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: ConvTransposeOptions<2>,
    ) -> Tensor<B, 4> {
        module::conv_transpose2d(x, weight, bias, options)
    }

    fn attention(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        attention(q, k, v)
    }

    /// The two products in bf16, the softmax in f32.
    fn attention_bf16(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = q.dtype();
        let channels = q.dims()[1];
        let scores = bf16(q).swap_dims(1, 2).matmul(bf16(k)).cast(dtype);
        let weights =
            burn::tensor::activation::softmax(scores.mul_scalar((channels as f64).powf(-0.5)), 2);
        bf16(v).matmul(bf16(weights).swap_dims(1, 2)).cast(dtype)
    }
}

/// burn's operations with the narrow deep convolutions gathered over the batch
/// ([`gather`](crate::gather)).
#[derive(Debug, Clone, Copy, Default)]
pub struct GatheredHeavy;

impl<B: Backend> HeavyKernels<B> for GatheredHeavy {
    fn conv2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: PaddedConvOptions<2>,
    ) -> Tensor<B, 4> {
        gather::conv::conv2d(x, weight, bias, options)
    }

    fn conv_transpose2d(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: ConvTransposeOptions<2>,
    ) -> Tensor<B, 4> {
        gather::conv_transpose::conv_transpose2d(x, weight, bias, options)
    }

    fn attention(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        attention(q, k, v)
    }

    fn attention_bf16(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        <BurnHeavy as HeavyKernels<B>>::attention_bf16(q, k, v)
    }
}

impl<B: Backend> Ops<B> {
    /// This table with `K`'s heavy entries computing in `precision`: in f32 as they are; in
    /// bf16 on bf16 copies of their inputs, the result cast back to the input's type.
    pub fn with_heavy<K: HeavyKernels<B>>(self, precision: Precision) -> Self {
        match precision {
            Precision::F32 => Self {
                conv2d: K::conv2d,
                conv_transpose2d: K::conv_transpose2d,
                attention: K::attention,
                precision,
                ..self
            },
            Precision::Bf16 => Self {
                conv2d: conv2d_bf16::<B, K>,
                conv_transpose2d: conv_transpose2d_bf16::<B, K>,
                attention: K::attention_bf16,
                precision,
                ..self
            },
        }
    }
}

/// `tensor` in bf16.
pub fn bf16<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    tensor.cast(FloatDType::BF16)
}

/// `K`'s convolution on bf16 values, the result in the input's type.
fn conv2d_bf16<B: Backend, K: HeavyKernels<B>>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    let dtype = x.dtype();
    K::conv2d(bf16(x), bf16(weight), bias.map(bf16), options).cast(dtype)
}

/// `K`'s transposed convolution on bf16 values, the result in the input's type.
fn conv_transpose2d_bf16<B: Backend, K: HeavyKernels<B>>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    let dtype = x.dtype();
    K::conv_transpose2d(bf16(x), bf16(weight), bias.map(bf16), options).cast(dtype)
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::{DType, Distribution};
    use burn_flex::Flex;

    use super::*;

    type B = Autodiff<Flex<f32>>;

    /// A convolution and attention in bf16 agree with f32 to bf16's precision, return f32, and
    /// hand f32 gradients to f32 inputs.
    #[test]
    fn bf16_entries_compute_in_bf16_and_return_f32_gradients() {
        let device = Default::default();
        let normal = |shape: [usize; 4]| {
            Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let (x, w) = (normal([2, 8, 6, 6]), normal([4, 8, 3, 3]));
        let options = PaddedConvOptions::asymmetric([1, 1], [1, 1], [1, 1], [1, 1], 1);
        let (f32s, bf16s) = (
            Ops::<B>::burn(),
            Ops::<B>::burn().with_heavy::<BurnHeavy>(Precision::Bf16),
        );
        assert_eq!(
            (f32s.precision, bf16s.precision),
            (Precision::F32, Precision::Bf16)
        );
        let exact = (f32s.conv2d)(x.clone(), w.clone(), None, options.clone());
        let mixed = (bf16s.conv2d)(x.clone(), w.clone(), None, options);
        assert_eq!(mixed.dtype(), DType::F32);
        let scale = exact.clone().abs().max().into_scalar();
        let error = (exact - mixed.clone()).abs().max().into_scalar();
        // 72 products of bf16 values (8 significant bits each): about 1% of the largest output.
        assert!(
            error > 0.0 && error < 0.03 * scale,
            "error {error} at scale {scale}"
        );
        let grads = mixed.sum().backward();
        let (dx, dw) = (x.grad(&grads).unwrap(), w.grad(&grads).unwrap());
        assert_eq!((dx.dtype(), dw.dtype()), (DType::F32, DType::F32));

        let q = Tensor::<B, 3>::random([2, 8, 5], Distribution::Normal(0.0, 1.0), &device);
        let exact = (f32s.attention)(q.clone(), q.clone(), q.clone());
        let mixed = (bf16s.attention)(q.clone(), q.clone(), q);
        let error = (exact - mixed).abs().max().into_scalar();
        assert!(error < 0.05, "attention error {error}");
    }

    /// A kernel set of its own, marked by a constant output, is what the bf16 table runs: the
    /// wrapper casts around it and never falls back to burn's operation.
    #[test]
    fn bf16_wraps_the_tables_own_kernels() {
        struct Marked;
        impl<B: Backend> HeavyKernels<B> for Marked {
            fn conv2d(
                x: Tensor<B, 4>,
                _: Tensor<B, 4>,
                _: Option<Tensor<B, 1>>,
                _: PaddedConvOptions<2>,
            ) -> Tensor<B, 4> {
                assert_eq!(x.dtype(), DType::BF16, "the kernel sees bf16 values");
                x.zeros_like().add_scalar(7.0)
            }
            fn conv_transpose2d(
                x: Tensor<B, 4>,
                _: Tensor<B, 4>,
                _: Option<Tensor<B, 1>>,
                _: ConvTransposeOptions<2>,
            ) -> Tensor<B, 4> {
                x.zeros_like().add_scalar(8.0)
            }
            fn attention(q: Tensor<B, 3>, _: Tensor<B, 3>, _: Tensor<B, 3>) -> Tensor<B, 3> {
                q.zeros_like().add_scalar(9.0)
            }
        }
        let device = Default::default();
        let ops = Ops::<Flex<f32>>::burn().with_heavy::<Marked>(Precision::Bf16);
        let x = Tensor::<Flex<f32>, 4>::ones([1, 2, 3, 3], &device);
        let options = PaddedConvOptions::asymmetric([1, 1], [0, 0], [0, 0], [1, 1], 1);
        let out = (ops.conv2d)(x.clone(), x.clone(), None, options);
        assert_eq!(out.dtype(), DType::F32);
        assert_eq!(out.max().into_scalar(), 7.0);
        let q = Tensor::<Flex<f32>, 3>::ones([1, 2, 3], &device);
        let out = (ops.attention)(q.clone(), q.clone(), q);
        assert_eq!((out.dtype(), out.min().into_scalar()), (DType::F32, 9.0));
    }

    #[test]
    fn precisions_read_and_print_their_names() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert!("fp16".parse::<Precision>().is_err());
    }
}
