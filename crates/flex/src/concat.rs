//! SimpleUnet's skip connections on burn-flex: two batches joined along the channels, image by
//! image in parallel, with a backward pass that hands each input a contiguous gradient.
//!
//! burn-autodiff's `cat` gives each input a strided view of the output's gradient. burn-flex then
//! makes the up path's part contiguous, and adds the skip's part onto the down path's gradient,
//! through its strided index iterator, one value at a time on one thread, with the other cores
//! idle.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::par_rows::filled_in_parallel;
use crate::tensor::{Flex, FlexAutodiff, flex, values};

/// `[N, C₁, H, W]` and `[N, C₂, H, W]` → `[N, C₁ + C₂, H, W]` on flex (inference).
pub(crate) fn concat(a: Tensor<Flex, 4>, b: Tensor<Flex, 4>) -> Tensor<Flex, 4> {
    let Some(shape) = joined_shape(a.dims(), b.dims()) else {
        return Tensor::cat(vec![a, b], 1);
    };
    let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
    let joined = join(&values(&a), &values(&b), shape[0]);
    Tensor::from_primitive(TensorPrimitive::Float(flex(joined, shape)))
}

/// The same on flex's autodiff decorator, recorded for the backward pass.
pub(crate) fn concat_tracked(
    a: Tensor<FlexAutodiff, 4>,
    b: Tensor<FlexAutodiff, 4>,
) -> Tensor<FlexAutodiff, 4> {
    let (a_shape, b_shape) = (a.dims(), b.dims());
    let Some(shape) = joined_shape(a_shape, b_shape) else {
        return Tensor::cat(vec![a, b], 1);
    };
    let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
    let joined = join(&values(&a.primitive), &values(&b.primitive), shape[0]);
    let step = ConcatStep {
        shapes: [a_shape, b_shape],
    };
    let output = step
        .prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateless(flex(joined, shape));
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// The joined shape, or `None` where the batch or the image size differ (burn's `cat` then
/// reports it).
fn joined_shape(a: [usize; 4], b: [usize; 4]) -> Option<[usize; 4]> {
    let [batch, a_channels, height, width] = a;
    (b[0] == batch && b[2..] == a[2..]).then_some([batch, a_channels + b[1], height, width])
}

/// `[N, A]` and `[N, B]` (row-major, any `A` and `B`) → `[N, A + B]`.
fn join(a: &[f32], b: &[f32], images: usize) -> Vec<f32> {
    let (a_len, b_len) = (a.len() / images, b.len() / images);
    filled_in_parallel(a.len() + b.len(), a_len + b_len, |image, out| {
        let (out_a, out_b) = out.split_at_mut(a_len);
        out_a.copy_from_slice(&a[image * a_len..][..a_len]);
        out_b.copy_from_slice(&b[image * b_len..][..b_len]);
    })
}

/// Values `offset..offset + len` of each image of `joined` `[N, ·]`, as `[N, len]`.
fn part(joined: &[f32], images: usize, offset: usize, len: usize) -> Vec<f32> {
    let image_len = joined.len() / images;
    filled_in_parallel(images * len, len, |image, out| {
        out.copy_from_slice(&joined[image * image_len + offset..][..len]);
    })
}

/// The backward step of [`concat_tracked`]: each input's channels of the output's gradient.
#[derive(Debug)]
struct ConcatStep {
    shapes: [[usize; 4]; 2],
}

impl Backward<Flex, 2> for ConcatStep {
    type State = ();

    fn backward(self, ops: Ops<(), 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let dy = values(&dy);
        let [a_shape, b_shape] = self.shapes;
        let image_len = |[_, channels, height, width]: [usize; 4]| channels * height * width;
        let (images, a_len) = (a_shape[0], image_len(a_shape));
        let [a_node, b_node] = ops.parents;
        if let Some(node) = a_node {
            let grad = part(&dy, images, 0, a_len);
            grads.register::<Flex>(node.id, flex(grad, a_shape));
        }
        if let Some(node) = b_node {
            let grad = part(&dy, images, a_len, image_len(b_shape));
            grads.register::<Flex>(node.id, flex(grad, b_shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    fn random<B: burn::tensor::backend::Backend>(
        shape: [usize; 4],
        device: &B::Device,
    ) -> Tensor<B, 4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn joins_like_burns_cat() {
        let device = Default::default();
        let (a, b) = (
            random::<Flex>([3, 2, 4, 5], &device),
            random([3, 5, 4, 5], &device),
        );
        let ours = concat(a.clone(), b.clone()).into_data();
        ours.assert_eq(&Tensor::cat(vec![a, b], 1).into_data(), true);
    }

    /// The gradients of a weighted sum of the joined batch (a weight per value, so that every
    /// value's place counts) equal burn's `cat`'s, value for value; an input without gradient
    /// gets none, and shapes `cat` refuses still reach it.
    #[test]
    fn gradients_match_burns_cat() {
        let device = Default::default();
        let a = random::<FlexAutodiff>([2, 3, 3, 2], &device).require_grad();
        let b = random::<FlexAutodiff>([2, 4, 3, 2], &device).require_grad();
        let weights = random::<FlexAutodiff>([2, 7, 3, 2], &device);
        let loss = |joined: Tensor<FlexAutodiff, 4>| (joined * weights.clone()).sum();
        let ours = loss(concat_tracked(a.clone(), b.clone())).backward();
        let burns = loss(Tensor::cat(vec![a.clone(), b.clone()], 1)).backward();
        for input in [&a, &b] {
            let ours = input.grad(&ours).expect("a gradient").into_data();
            ours.assert_eq(&input.grad(&burns).expect("a gradient").into_data(), true);
        }

        let constant = random::<FlexAutodiff>([2, 1, 3, 2], &device);
        let grads = concat_tracked(a.clone(), constant.clone()).sum().backward();
        assert!(constant.grad(&grads).is_none());
        assert_eq!(a.grad(&grads).expect("a gradient").dims(), [2, 3, 3, 2]);

        let other_batch = random::<FlexAutodiff>([3, 3, 3, 2], &device);
        let join = || concat_tracked(a.clone(), other_batch);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(join));
        assert!(refused.is_err(), "burn's cat refuses different batch sizes");
    }
}
