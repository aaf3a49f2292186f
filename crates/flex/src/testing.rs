//! What the kernels' tests share: random inputs and a comparison relative to the reference's
//! scale.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

/// Values drawn from the standard normal distribution.
pub(crate) fn normal<K: Backend, const D: usize>(shape: [usize; D]) -> Tensor<K, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// `ours` and `reference` agree to `tolerance` of the largest magnitude of `reference` (exactly,
/// where that is zero).
pub(crate) fn assert_close<K: Backend, const D: usize>(
    ours: Tensor<K, D>,
    reference: Tensor<K, D>,
    tolerance: f32,
    what: &str,
) {
    assert_eq!(ours.dims(), reference.dims(), "{what}");
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    let reference = reference.into_data().to_vec::<f32>().unwrap();
    let (error, scale) = error_and_scale(&ours, &reference);
    assert!(
        error <= tolerance * scale,
        "{what}: error {error} at scale {scale}"
    );
}

/// The largest |ours − reference| and the largest |reference|.
pub(crate) fn error_and_scale(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |max, v| max.max(v.abs()));
    let error = ours
        .iter()
        .zip(reference)
        .fold(0f32, |max, (a, b)| max.max((a - b).abs()));
    (error, scale)
}
