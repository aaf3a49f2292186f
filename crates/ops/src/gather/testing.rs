//! What the gathered layers' tests share.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor, Tolerance};

/// A layer computed two ways, `ours` and `burns`, agrees on a random input of shape `input`:
/// the output, and the gradients of the input, `weight` and `bias` under a loss that weighs
/// every output differently.
pub(crate) fn assert_same_as_burn<B: AutodiffBackend<FloatElem = f32>>(
    input: [usize; 4],
    ours: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    burns: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) {
    let device = weight.device();
    let x = Tensor::<B, 4>::random(input, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let (ours, burns) = (ours(x.clone()), burns(x.clone()));
    assert_eq!(ours.dims(), burns.dims());
    let tolerance = Tolerance::<f32>::absolute(1e-5);
    ours.to_data()
        .assert_approx_eq::<f32>(&burns.to_data(), tolerance);
    let weights = Tensor::<B, 4>::random(burns.dims(), Distribution::Default, &device);
    let our_grads = (ours * weights.clone()).sum().backward();
    let burn_grads = (burns * weights).sum().backward();
    for tensor in [&x, weight] {
        let ours = tensor.grad(&our_grads).expect("a gradient").into_data();
        let burns = tensor.grad(&burn_grads).expect("a gradient").into_data();
        ours.assert_approx_eq::<f32>(&burns, tolerance);
    }
    let bias = bias.expect("the layer has a bias");
    let ours = bias.grad(&our_grads).expect("a gradient").into_data();
    ours.assert_approx_eq::<f32>(
        &bias.grad(&burn_grads).expect("a gradient").into_data(),
        tolerance,
    );
}
