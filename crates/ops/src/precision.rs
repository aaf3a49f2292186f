//! Mixed precision as a property of a table: the convolutions and attention computed in bf16,
//! everything else in f32.
//!
//! burn has no autocast. Its `cast` is differentiable (the backward pass casts the gradient
//! back), so an entry that casts its inputs to bf16, computes, and casts the result back to the
//! input's type gives bf16 products on tensor cores while the weights, their gradients, Adam's
//! moments, the norms' statistics and the loss stay f32: mixed precision, with f32 master weights.

use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{FloatDType, Tensor, backend::Backend, module};
use serde::{Deserialize, Serialize};

use crate::Ops;

/// The number format of a table's heavy operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32 (on a GPU, burn-cuda's f32 products may use TF32 tensor cores).
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

impl<B: Backend> Ops<B> {
    /// This table with its convolutions, transposed convolutions and attention computed in
    /// `precision` by burn's operations (f32: the table as it is).
    pub fn with_precision(self, precision: Precision) -> Self {
        match precision {
            Precision::F32 => self,
            Precision::Bf16 => Self {
                conv2d: conv2d::<B>,
                conv_transpose2d: conv_transpose2d::<B>,
                attention: attention::<B>,
                ..self
            },
        }
    }
}

fn bf16<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    tensor.cast(FloatDType::BF16)
}

/// burn's convolution in bf16, the result in the input's type.
fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    let dtype = x.dtype();
    module::conv2d(bf16(x), bf16(weight), bias.map(bf16), options).cast(dtype)
}

/// burn's transposed convolution in bf16, the result in the input's type.
fn conv_transpose2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    let dtype = x.dtype();
    module::conv_transpose2d(bf16(x), bf16(weight), bias.map(bf16), options).cast(dtype)
}

/// The attention's two products in bf16, its softmax in f32.
fn attention<B: Backend>(q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
    let dtype = q.dtype();
    let channels = q.dims()[1];
    let scores = bf16(q).swap_dims(1, 2).matmul(bf16(k)).cast(dtype);
    let weights =
        burn::tensor::activation::softmax(scores.mul_scalar((channels as f64).powf(-0.5)), 2);
    bf16(v).matmul(bf16(weights).swap_dims(1, 2)).cast(dtype)
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
            Ops::<B>::burn().with_precision(Precision::Bf16),
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

    #[test]
    fn precisions_read_and_print_their_names() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert!("fp16".parse::<Precision>().is_err());
    }
}
