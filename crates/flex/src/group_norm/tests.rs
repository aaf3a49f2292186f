//! The kernels against burn's GroupNorm (+ SiLU) operations (`ddpm_ops::group_norm`): outputs
//! and every gradient, with and without SiLU, on shapes whose rows are and are not whole 16-value
//! lanes.

use super::*;
use crate::testing::{assert_close, normal};

fn options(groups: usize, silu: bool) -> GroupNormOptions {
    GroupNormOptions {
        groups,
        epsilon: 1e-6,
        silu,
    }
}

fn check_training(shape: [usize; 4], groups: usize, silu: bool) {
    let c = shape[1];
    // Channels offset and scaled differently, so that groups have their own statistics.
    let x = (normal::<FlexAutodiff, 4>(shape) * normal::<FlexAutodiff, 4>([1, c, 1, 1]).exp()
        + normal::<FlexAutodiff, 4>([1, c, 1, 1]))
    .detach()
    .require_grad();
    let gamma = normal::<FlexAutodiff, 1>([c]).require_grad();
    let beta = normal::<FlexAutodiff, 1>([c]).require_grad();
    let options = options(groups, silu);
    let ours = group_norm_tracked(x.clone(), gamma.clone(), beta.clone(), options);
    let expected = ddpm_ops::group_norm(x.clone(), gamma.clone(), beta.clone(), options);
    let what = |part: &str| format!("{part} of {shape:?} in {groups} groups, silu {silu}");
    assert_close(ours.clone(), expected.clone(), 1e-5, &what("output"));

    let loss_weights = normal::<FlexAutodiff, 4>(shape);
    let our_grads = (ours * loss_weights.clone()).sum().backward();
    let expected_grads = (expected * loss_weights).sum().backward();
    let x_grad = |grads| x.grad(grads).unwrap();
    let x_what = what("x gradient");
    assert_close(x_grad(&our_grads), x_grad(&expected_grads), 1e-4, &x_what);
    for (name, parameter) in [("gamma", &gamma), ("beta", &beta)] {
        let grad = |grads| parameter.grad(grads).unwrap();
        let name = what(&format!("{name} gradient"));
        assert_close(grad(&our_grads), grad(&expected_grads), 1e-5, &name);
    }
}

#[test]
fn training_matches_burns_operations() {
    for silu in [true, false] {
        // 42 pixels (not whole lanes), two channels a group.
        check_training([3, 6, 7, 6], 3, silu);
        // The paper's 32 groups of 4 channels at 4×4.
        check_training([2, 128, 4, 4], 32, silu);
        // One group of every channel; one channel a group; one pixel.
        check_training([2, 5, 3, 3], 1, silu);
        check_training([2, 4, 5, 1], 4, silu);
        check_training([3, 8, 1, 1], 2, silu);
    }
}

#[test]
fn inference_matches_burns_operations() {
    let shape = [3, 12, 5, 7];
    let x = normal::<Flex, 4>(shape) * 3.0 + 1.0;
    let (gamma, beta) = (normal::<Flex, 1>([12]), normal::<Flex, 1>([12]));
    for silu in [true, false] {
        let options = options(4, silu);
        let ours = group_norm(x.clone(), gamma.clone(), beta.clone(), options);
        let expected = ddpm_ops::group_norm(x.clone(), gamma.clone(), beta.clone(), options);
        assert_close(ours, expected, 1e-5, "output");
    }
}

#[test]
fn an_input_without_a_gradient_gets_none() {
    let x = normal::<FlexAutodiff, 4>([2, 4, 3, 3]);
    let gamma = normal([4]).require_grad();
    let beta = normal([4]);
    let y = group_norm_tracked(x.clone(), gamma.clone(), beta.clone(), options(2, true));
    let grads = y.sum().backward();
    assert!(x.grad(&grads).is_none() && beta.grad(&grads).is_none());
    assert!(gamma.grad(&grads).is_some());
}

#[test]
#[should_panic(expected = "3 groups do not divide 4 channels")]
fn groups_that_do_not_divide_the_channels_are_refused() {
    let x = normal::<Flex, 4>([1, 4, 2, 2]);
    let _ = group_norm(x, normal([4]), normal([4]), options(3, false));
}
