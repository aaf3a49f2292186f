//! The kernels against burn's operations (`ddpm_ops::attention`): outputs and the gradients of
//! `q`, `k` and `v`.

use super::*;
use crate::testing::{assert_close, normal};

fn check_training(shape: [usize; 3]) {
    // Scaled up, so that the softmax is far from uniform.
    let input = || {
        (normal::<FlexAutodiff, 3>(shape) * 3.0)
            .detach()
            .require_grad()
    };
    let (q, k, v) = (input(), input(), input());
    let ours = attention_tracked(q.clone(), k.clone(), v.clone());
    let expected = ddpm_ops::attention(q.clone(), k.clone(), v.clone());
    assert_close(
        ours.clone(),
        expected.clone(),
        1e-5,
        &format!("output of {shape:?}"),
    );

    let loss_weights = normal::<FlexAutodiff, 3>(shape);
    let our_grads = (ours * loss_weights.clone()).sum().backward();
    let expected_grads = (expected * loss_weights).sum().backward();
    for (name, input) in [("q", &q), ("k", &k), ("v", &v)] {
        let grad = |grads| input.grad(grads).unwrap();
        let what = format!("{name} gradient of {shape:?}");
        assert_close(grad(&our_grads), grad(&expected_grads), 1e-4, &what);
    }
}

#[test]
fn training_matches_burns_operations() {
    // Odd sizes; the paper's 16 positions at 4×4 (mid level); one position.
    check_training([3, 5, 7]);
    check_training([2, 8, 16]);
    check_training([1, 4, 33]);
    check_training([2, 3, 1]);
}

#[test]
fn inference_matches_burns_operations() {
    let shape = [3, 6, 20];
    let input = || normal::<Flex, 3>(shape) * 2.0;
    let (q, k, v) = (input(), input(), input());
    let ours = attention(q.clone(), k.clone(), v.clone());
    let expected = ddpm_ops::attention(q, k, v);
    assert_close(ours, expected, 1e-5, "output");
}

#[test]
fn an_input_without_a_gradient_gets_none() {
    let shape = [2, 3, 5];
    let q = normal::<FlexAutodiff, 3>(shape);
    let k = normal::<FlexAutodiff, 3>(shape).require_grad();
    let v = normal::<FlexAutodiff, 3>(shape);
    let grads = attention_tracked(q.clone(), k.clone(), v.clone())
        .sum()
        .backward();
    assert!(q.grad(&grads).is_none() && v.grad(&grads).is_none());
    assert!(k.grad(&grads).is_some());
}
