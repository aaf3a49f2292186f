//! The kernels against the same arithmetic in burn's operations: outputs, statistics and every
//! gradient.

use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::*;
use crate::testing::{assert_close, normal};

/// Per channel of `[N, C, H, W]`: the mean over the other axes, `[C]`.
fn channel_mean<K: Backend>(v: Tensor<K, 4>) -> Tensor<K, 1> {
    let channels = v.dims()[1];
    v.swap_dims(0, 1)
        .reshape([channels as i32, -1])
        .mean_dim(1)
        .reshape([channels])
}

/// PyTorch's training-mode BatchNorm2d after a ReLU, in burn's operations.
fn reference(
    x: Tensor<FlexAutodiff, 4>,
    gamma: Tensor<FlexAutodiff, 1>,
    offset: Tensor<FlexAutodiff, 2>,
    epsilon: f64,
) -> NormalizedBatch<FlexAutodiff> {
    let [n, c, _, _] = x.dims();
    let per_channel = |v: Tensor<FlexAutodiff, 1>| v.reshape([1, c, 1, 1]);
    let r = relu(x);
    let mean = channel_mean(r.clone());
    let centered = r - per_channel(mean.clone());
    let variance = channel_mean(centered.clone().square());
    let scale = gamma / variance.clone().add_scalar(epsilon).sqrt();
    let output = centered * per_channel(scale) + offset.reshape([n, c, 1, 1]);
    NormalizedBatch {
        output,
        mean,
        variance,
    }
}

fn check_training(shape: [usize; 4]) {
    let epsilon = 1e-5;
    let [n, c, _, _] = shape;
    // Shifted, so that some channels are mostly positive and some mostly cut by the ReLU.
    let x = (normal::<FlexAutodiff, 4>(shape) + normal::<FlexAutodiff, 4>([1, c, 1, 1]))
        .detach()
        .require_grad();
    let gamma = normal([c]).require_grad();
    let offset = normal([n, c]).require_grad();
    let ours = relu_batch_norm(x.clone(), gamma.clone(), offset.clone(), epsilon);
    let expected = reference(x.clone(), gamma.clone(), offset.clone(), epsilon);
    assert_close(ours.output.clone(), expected.output.clone(), 1e-5, "output");
    assert_close(ours.mean, expected.mean.detach(), 1e-5, "mean");
    assert_close(ours.variance, expected.variance.detach(), 1e-5, "variance");

    let loss_weights = normal::<FlexAutodiff, 4>(shape);
    let our_grads = (ours.output * loss_weights.clone()).sum().backward();
    let expected_grads = (expected.output * loss_weights).sum().backward();
    let grad = |tensor: &Tensor<FlexAutodiff, 4>, grads| tensor.grad(grads).unwrap();
    assert_close(
        grad(&x, &our_grads),
        grad(&x, &expected_grads),
        1e-5,
        "x gradient",
    );
    assert_close(
        gamma.grad(&our_grads).unwrap(),
        gamma.grad(&expected_grads).unwrap(),
        1e-5,
        "gamma gradient",
    );
    assert_close(
        offset.grad(&our_grads).unwrap(),
        offset.grad(&expected_grads).unwrap(),
        1e-5,
        "offset gradient",
    );
}

#[test]
fn training_matches_burns_operations() {
    // 42 pixels: rows that are not a whole number of 16-value lanes; 16 pixels: rows that are.
    check_training([3, 5, 7, 6]);
    check_training([2, 4, 4, 4]);
    // SimpleUnet's deepest blocks: one pixel per image.
    check_training([4, 6, 1, 1]);
}

#[test]
fn an_input_without_a_gradient_gets_none() {
    let x = normal::<FlexAutodiff, 4>([2, 3, 4, 4]);
    let gamma = normal([3]).require_grad();
    let offset = normal([2, 3]);
    let ours = relu_batch_norm(x.clone(), gamma.clone(), offset.clone(), 1e-5);
    let grads = ours.output.sum().backward();
    assert!(x.grad(&grads).is_none() && offset.grad(&grads).is_none());
    assert!(gamma.grad(&grads).is_some());
}

#[test]
fn inference_matches_burns_operations() {
    let shape = [3, 5, 7, 6];
    let x = normal::<Flex, 4>(shape);
    let (scale, offset) = (normal::<Flex, 1>([5]), normal::<Flex, 2>([3, 5]));
    let ours = relu_scale_shift(x.clone(), scale.clone(), offset.clone());
    let expected = relu(x) * scale.reshape([1, 5, 1, 1]) + offset.reshape([3, 5, 1, 1]);
    assert_close(ours, expected, 1e-5, "output");
}
