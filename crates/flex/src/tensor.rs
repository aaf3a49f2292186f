//! The backend these kernels serve, and moving values between its tensors and plain buffers.

use std::borrow::Cow;

use burn::backend::Autodiff;
use burn::tensor::{Shape, TensorData};
use burn_flex::FlexTensor;

/// burn-flex with f32 floats: the backend of [`FlexKernels`](crate::FlexKernels)' inference
/// table and the inner backend of its training table.
pub type Flex = burn_flex::Flex<f32>;

/// burn's autodiff decorator over [`Flex`]: the backend of the training table.
pub type FlexAutodiff = Autodiff<Flex>;

/// A flex tensor's f32 values in row-major order (copied only if it is a strided view).
pub(crate) fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            tensor
                .to_contiguous()
                .into_data()
                .to_vec()
                .expect("f32 values"),
        ),
    }
}

/// A flex tensor of `shape` holding `values` (row-major).
pub(crate) fn flex<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::new(shape)))
}
