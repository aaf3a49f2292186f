//! The kernels against burn-flex's own convolutions: outputs and every gradient.

use burn::tensor::{Distribution, Tensor};

use super::*;
use crate::testing::error_and_scale;

type B = FlexAutodiff;

fn normal<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// `ours` and `burns` agree to `tolerance` of the largest magnitude (they sum in different
/// orders; Winograd's transforms round more).
fn assert_close<K: Backend, const D: usize>(
    ours: Tensor<K, D>,
    burns: Tensor<K, D>,
    tolerance: f32,
    what: &str,
) {
    assert_eq!(ours.dims(), burns.dims(), "{what}");
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    let (error, scale) = error_and_scale(&ours, &burns.into_data().to_vec::<f32>().unwrap());
    assert!(
        scale > 0.0 && error <= tolerance * scale,
        "{what}: error {error} at scale {scale}"
    );
}

/// A layer as a function of its input, weight and bias.
type Layer<'a> = dyn Fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>) -> Tensor<B, 4> + 'a;

/// A layer computed by `ours` and by `burns` on the same random operands (a bias if
/// `bias_channels` is given): the output and, under a loss that weighs every output differently,
/// the gradients of the weight, the bias and, if `input_grad`, the input.
fn check(
    input: [usize; 4],
    weight: [usize; 4],
    bias_channels: Option<usize>,
    input_grad: bool,
    tolerance: f32,
    [ours, burns]: [&Layer<'_>; 2],
) {
    let x = normal(input);
    let x = if input_grad { x.require_grad() } else { x };
    let w = normal(weight).require_grad();
    let b = bias_channels.map(|channels| normal([channels]).require_grad());
    let ours = ours(x.clone(), w.clone(), b.clone());
    let burns = burns(x.clone(), w.clone(), b.clone());
    assert_close(ours.clone(), burns.clone(), tolerance, "output");
    let loss_weights = normal(burns.dims());
    let our_grads = (ours * loss_weights.clone()).sum().backward();
    let burn_grads = (burns * loss_weights).sum().backward();
    match input_grad {
        true => assert_close(
            x.grad(&our_grads).expect("an input gradient"),
            x.grad(&burn_grads).expect("an input gradient"),
            tolerance,
            "input gradient",
        ),
        false => assert!(x.grad(&our_grads).is_none()),
    }
    assert_close(
        w.grad(&our_grads).unwrap(),
        w.grad(&burn_grads).unwrap(),
        tolerance,
        "weight gradient",
    );
    if let Some(b) = b {
        assert_close(
            b.grad(&our_grads).unwrap(),
            b.grad(&burn_grads).unwrap(),
            tolerance,
            "bias gradient",
        );
    }
}

/// A convolution by the patch-matrix kernels and, where it applies, by Winograd's.
fn check_conv(input: [usize; 4], weight: [usize; 4], stride: [usize; 2], padding: [usize; 2]) {
    let options = ConvOptions::new(stride, padding, [1, 1], 1);
    let patches = |x, w, b| conv2d::<FlexAutodiff, false>(x, w, b, options.clone().into());
    let winograd = |x, w, b| conv2d::<FlexAutodiff, true>(x, w, b, options.clone().into());
    let burns = |x, w, b| module::conv2d(x, w, b, options.clone());
    // Winograd's rounding errors reach ~1e-5 of the largest output at 256 channels.
    for (ours, tolerance) in [(&patches as &Layer<'_>, 1e-5), (&winograd, 5e-5)] {
        check(
            input,
            weight,
            Some(weight[0]),
            true,
            tolerance,
            [ours, &burns],
        );
        check(input, weight, None, false, tolerance, [ours, &burns]);
    }
}

fn check_conv_transpose(
    input: [usize; 4],
    weight: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 2],
) {
    let options = ConvTransposeOptions::new(stride, padding, [0, 0], [1, 1], 1);
    let ours = |x, w, b| conv_transpose2d::<FlexAutodiff>(x, w, b, options.clone());
    let burns = |x, w, b| module::conv_transpose2d(x, w, b, options.clone());
    check(input, weight, Some(weight[1]), true, 1e-5, [&ours, &burns]);
    check(input, weight, None, false, 1e-5, [&ours, &burns]);
}

#[test]
fn convolutions_match_burns() {
    // SimpleUnet's 3x3 and 4x4 stride-2 layers, a 1x1 one; batches above and below the thread
    // count (one image: the products use the threads instead).
    check_conv([3, 4, 6, 5], [6, 4, 3, 3], [1, 1], [1, 1]);
    check_conv([1, 5, 8, 8], [3, 5, 4, 4], [2, 2], [1, 1]);
    check_conv([5, 6, 4, 4], [2, 6, 1, 1], [1, 1], [0, 0]);
    // Layers Winograd's kernels take: tiles that fit, tiles that overhang.
    check_conv([2, 64, 16, 16], [64, 64, 3, 3], [1, 1], [1, 1]);
    check_conv([1, 256, 9, 10], [256, 256, 3, 3], [1, 1], [1, 1]);
    // Uneven strides, paddings and kernels; a kernel wider than the image without its padding.
    check_conv([2, 3, 7, 5], [4, 3, 3, 2], [2, 1], [0, 1]);
    check_conv([2, 2, 3, 2], [3, 2, 5, 4], [3, 2], [2, 2]);
}

#[test]
fn transposed_convolutions_match_burns() {
    check_conv_transpose([3, 6, 4, 4], [6, 5, 4, 4], [2, 2], [1, 1]);
    check_conv_transpose([1, 4, 3, 5], [4, 3, 3, 3], [1, 1], [1, 1]);
    check_conv_transpose([2, 3, 3, 2], [3, 4, 3, 2], [2, 1], [0, 1]);
}

#[test]
fn inference_matches_burns() {
    let normal = |shape: [usize; 4]| {
        Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    };
    let bias = Some(Tensor::<Flex, 1>::random(
        [5],
        Distribution::Default,
        &Default::default(),
    ));
    let (x, w) = (normal([3, 4, 6, 6]), normal([5, 4, 4, 4]));
    let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
    let ours = conv2d::<Flex, true>(x.clone(), w.clone(), bias.clone(), options.clone().into());
    assert_close(
        ours,
        module::conv2d(x, w, bias.clone(), options),
        5e-5,
        "convolution",
    );
    let (x, w) = (normal([3, 4, 3, 3]), normal([4, 5, 4, 4]));
    let options = ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1);
    let ours = conv_transpose2d::<Flex>(x.clone(), w.clone(), bias.clone(), options.clone());
    let burns = module::conv_transpose2d(x, w, bias, options);
    assert_close(ours, burns, 1e-5, "transposed convolution");
}

#[test]
fn layers_that_are_not_plain_are_left_to_burn() {
    let x = normal([1, 4, 6, 6]);
    let w = normal([4, 4, 3, 3]);
    let dilated = ConvOptions::new([1, 1], [1, 1], [2, 2], 1);
    let grouped = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
    assert!(conv_geometry(&x, &w, &None, &dilated).is_none());
    assert!(conv_geometry(&x, &w.clone().slice([0..4, 0..2]), &None, &grouped).is_none());
    let padded_out = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
    assert!(conv_transpose_geometry(&x, &w, &None, &padded_out).is_none());
    let plain = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    assert!(conv_geometry(&x, &w, &None, &plain).is_some());
    // Wrong bias length: burn reports it.
    assert!(conv_geometry(&x, &w, &Some(normal([3])), &plain).is_none());
}
