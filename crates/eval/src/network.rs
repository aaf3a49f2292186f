//! The FID Inception network: Inception-v3 with the FID variants of its blocks (the TensorFlow
//! graph of 2015-12-05, as pytorch-fid's `FIDInceptionA`, `C`, `E_1` and `E_2` lay it out: average
//! pools that leave the padding out of their count, and a max pool in the last block), up to the
//! 2048-d pool3 features.
//!
//! Its fields carry pytorch-fid's key names in snake case, so the release file loads into it by a
//! prefix map. Every convolution goes through the table of operations it is given, so a kernel
//! crate's convolutions serve it as they serve the diffusion models; each one's BatchNorm
//! (inference mode, `ε = 0.001`) is folded into the convolution's weight and bias first.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{Tensor, backend::Backend};
use ddpm_ops::Ops;

/// Convolution without bias, BatchNorm, ReLU.
#[derive(Module, Debug)]
pub(crate) struct BasicConv<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

impl<B: Backend> BasicConv<B> {
    /// `from → to` channels, a `kernel`, `stride` and (symmetric, per axis) `padding`.
    fn new(
        [from, to]: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        [pad_h, pad_w]: [usize; 2],
        device: &B::Device,
    ) -> Self {
        let conv = Conv2dConfig::new([from, to], kernel)
            .with_stride([stride; 2])
            .with_padding(PaddingConfig2d::Explicit(pad_h, pad_w, pad_h, pad_w))
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(to).with_epsilon(1e-3).init(device);
        Self { conv, bn }
    }

    /// `relu(bn(conv(x)))`, the norm folded into the convolution:
    /// `W' = W·γ/√(σ² + ε)`, `b' = β − μ·γ/√(σ² + ε)`.
    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.affine(ops, x))
    }

    /// `relu(bn(conv(avg_pool(x))))` for a 1×1 convolution, which commutes with the average
    /// pooling (both are linear, and the pool's weights sum to one, so the bias passes
    /// through): pooling the convolution's output pools its fewer channels.
    fn after_average_pool(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(average_3x3(self.affine(ops, x)))
    }

    /// `bn(conv(x))`, the norm folded in.
    fn affine(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let bn = &self.bn;
        let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
        let bias = bn.beta.val() - bn.running_mean.value() * scale.clone();
        let channels = scale.dims()[0];
        let weight = self.conv.weight.val() * scale.reshape([channels, 1, 1, 1]);
        let PaddingConfig2d::Explicit(top, left, bottom, right) = self.conv.padding else {
            unreachable!("built with explicit padding")
        };
        let options = PaddedConvOptions::asymmetric(
            self.conv.stride,
            [top, left],
            [bottom, right],
            [1, 1],
            1,
        );
        (ops.conv2d)(x, weight, Some(bias), options)
    }
}

/// 1×1, `k×k` convolutions in one shorthand: `conv(from, to, kernel, stride, padding)`.
fn conv<B: Backend>(
    from: usize,
    to: usize,
    kernel: [usize; 2],
    stride: usize,
    padding: [usize; 2],
    device: &B::Device,
) -> BasicConv<B> {
    BasicConv::new([from, to], kernel, stride, padding, device)
}

/// 3×3, stride 1, "same" average pooling that leaves the padding out of its count.
fn average_3x3<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

/// 3×3, stride 2, unpadded max pooling.
fn max_3x3_down<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// Mixed 5b–5d: 1×1, 5×5, double 3×3 and pooled branches.
#[derive(Module, Debug)]
struct BlockA<B: Backend> {
    branch1x1: BasicConv<B>,
    branch5x5_1: BasicConv<B>,
    branch5x5_2: BasicConv<B>,
    branch3x3dbl_1: BasicConv<B>,
    branch3x3dbl_2: BasicConv<B>,
    branch3x3dbl_3: BasicConv<B>,
    branch_pool: BasicConv<B>,
}

impl<B: Backend> BlockA<B> {
    fn new(from: usize, pool: usize, device: &B::Device) -> Self {
        Self {
            branch1x1: conv(from, 64, [1, 1], 1, [0, 0], device),
            branch5x5_1: conv(from, 48, [1, 1], 1, [0, 0], device),
            branch5x5_2: conv(48, 64, [5, 5], 1, [2, 2], device),
            branch3x3dbl_1: conv(from, 64, [1, 1], 1, [0, 0], device),
            branch3x3dbl_2: conv(64, 96, [3, 3], 1, [1, 1], device),
            branch3x3dbl_3: conv(96, 96, [3, 3], 1, [1, 1], device),
            branch_pool: conv(from, pool, [1, 1], 1, [0, 0], device),
        }
    }

    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = |layer: &BasicConv<B>, x| layer.forward(ops, x);
        let b1 = c(&self.branch1x1, x.clone());
        let b5 = c(&self.branch5x5_2, c(&self.branch5x5_1, x.clone()));
        let b3 = c(&self.branch3x3dbl_1, x.clone());
        let b3 = c(&self.branch3x3dbl_3, c(&self.branch3x3dbl_2, b3));
        let pool = self.branch_pool.after_average_pool(ops, x);
        Tensor::cat(vec![b1, b5, b3, pool], 1)
    }
}

/// Mixed 6a: down to 17×17.
#[derive(Module, Debug)]
struct BlockB<B: Backend> {
    branch3x3: BasicConv<B>,
    branch3x3dbl_1: BasicConv<B>,
    branch3x3dbl_2: BasicConv<B>,
    branch3x3dbl_3: BasicConv<B>,
}

impl<B: Backend> BlockB<B> {
    fn new(from: usize, device: &B::Device) -> Self {
        Self {
            branch3x3: conv(from, 384, [3, 3], 2, [0, 0], device),
            branch3x3dbl_1: conv(from, 64, [1, 1], 1, [0, 0], device),
            branch3x3dbl_2: conv(64, 96, [3, 3], 1, [1, 1], device),
            branch3x3dbl_3: conv(96, 96, [3, 3], 2, [0, 0], device),
        }
    }

    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = |layer: &BasicConv<B>, x| layer.forward(ops, x);
        let b3 = c(&self.branch3x3, x.clone());
        let dbl = c(&self.branch3x3dbl_1, x.clone());
        let dbl = c(&self.branch3x3dbl_3, c(&self.branch3x3dbl_2, dbl));
        Tensor::cat(vec![b3, dbl, max_3x3_down(x)], 1)
    }
}

/// Mixed 6b–6e: factorised 7×7 branches.
#[derive(Module, Debug)]
struct BlockC<B: Backend> {
    branch1x1: BasicConv<B>,
    branch7x7_1: BasicConv<B>,
    branch7x7_2: BasicConv<B>,
    branch7x7_3: BasicConv<B>,
    branch7x7dbl_1: BasicConv<B>,
    branch7x7dbl_2: BasicConv<B>,
    branch7x7dbl_3: BasicConv<B>,
    branch7x7dbl_4: BasicConv<B>,
    branch7x7dbl_5: BasicConv<B>,
    branch_pool: BasicConv<B>,
}

impl<B: Backend> BlockC<B> {
    fn new(c7: usize, device: &B::Device) -> Self {
        let (row, column) = (([1, 7], [0, 3]), ([7, 1], [3, 0]));
        let seven = |from, to, (kernel, padding): ([usize; 2], [usize; 2])| {
            conv(from, to, kernel, 1, padding, device)
        };
        Self {
            branch1x1: conv(768, 192, [1, 1], 1, [0, 0], device),
            branch7x7_1: conv(768, c7, [1, 1], 1, [0, 0], device),
            branch7x7_2: seven(c7, c7, row),
            branch7x7_3: seven(c7, 192, column),
            branch7x7dbl_1: conv(768, c7, [1, 1], 1, [0, 0], device),
            branch7x7dbl_2: seven(c7, c7, column),
            branch7x7dbl_3: seven(c7, c7, row),
            branch7x7dbl_4: seven(c7, c7, column),
            branch7x7dbl_5: seven(c7, 192, row),
            branch_pool: conv(768, 192, [1, 1], 1, [0, 0], device),
        }
    }

    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let chain = |layers: &[&BasicConv<B>], x: Tensor<B, 4>| {
            layers.iter().fold(x, |x, layer| layer.forward(ops, x))
        };
        let b1 = self.branch1x1.forward(ops, x.clone());
        let b7 = chain(
            &[&self.branch7x7_1, &self.branch7x7_2, &self.branch7x7_3],
            x.clone(),
        );
        let dbl = chain(
            &[
                &self.branch7x7dbl_1,
                &self.branch7x7dbl_2,
                &self.branch7x7dbl_3,
                &self.branch7x7dbl_4,
                &self.branch7x7dbl_5,
            ],
            x.clone(),
        );
        let pool = self.branch_pool.after_average_pool(ops, x);
        Tensor::cat(vec![b1, b7, dbl, pool], 1)
    }
}

/// Mixed 7a: down to 8×8.
#[derive(Module, Debug)]
struct BlockD<B: Backend> {
    branch3x3_1: BasicConv<B>,
    branch3x3_2: BasicConv<B>,
    branch7x7x3_1: BasicConv<B>,
    branch7x7x3_2: BasicConv<B>,
    branch7x7x3_3: BasicConv<B>,
    branch7x7x3_4: BasicConv<B>,
}

impl<B: Backend> BlockD<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            branch3x3_1: conv(768, 192, [1, 1], 1, [0, 0], device),
            branch3x3_2: conv(192, 320, [3, 3], 2, [0, 0], device),
            branch7x7x3_1: conv(768, 192, [1, 1], 1, [0, 0], device),
            branch7x7x3_2: conv(192, 192, [1, 7], 1, [0, 3], device),
            branch7x7x3_3: conv(192, 192, [7, 1], 1, [3, 0], device),
            branch7x7x3_4: conv(192, 192, [3, 3], 2, [0, 0], device),
        }
    }

    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = |layer: &BasicConv<B>, x| layer.forward(ops, x);
        let b3 = c(&self.branch3x3_2, c(&self.branch3x3_1, x.clone()));
        let b7 = c(&self.branch7x7x3_2, c(&self.branch7x7x3_1, x.clone()));
        let b7 = c(&self.branch7x7x3_4, c(&self.branch7x7x3_3, b7));
        Tensor::cat(vec![b3, b7, max_3x3_down(x)], 1)
    }
}

/// Mixed 7b and 7c: split 3×3 branches; 7b pools by average, 7c by maximum (pytorch-fid's
/// `FIDInceptionE_1` and `_2`).
#[derive(Module, Debug)]
struct BlockE<B: Backend> {
    branch1x1: BasicConv<B>,
    branch3x3_1: BasicConv<B>,
    branch3x3_2a: BasicConv<B>,
    branch3x3_2b: BasicConv<B>,
    branch3x3dbl_1: BasicConv<B>,
    branch3x3dbl_2: BasicConv<B>,
    branch3x3dbl_3a: BasicConv<B>,
    branch3x3dbl_3b: BasicConv<B>,
    branch_pool: BasicConv<B>,
    max_pool: bool,
}

impl<B: Backend> BlockE<B> {
    fn new(from: usize, max_pool: bool, device: &B::Device) -> Self {
        Self {
            branch1x1: conv(from, 320, [1, 1], 1, [0, 0], device),
            branch3x3_1: conv(from, 384, [1, 1], 1, [0, 0], device),
            branch3x3_2a: conv(384, 384, [1, 3], 1, [0, 1], device),
            branch3x3_2b: conv(384, 384, [3, 1], 1, [1, 0], device),
            branch3x3dbl_1: conv(from, 448, [1, 1], 1, [0, 0], device),
            branch3x3dbl_2: conv(448, 384, [3, 3], 1, [1, 1], device),
            branch3x3dbl_3a: conv(384, 384, [1, 3], 1, [0, 1], device),
            branch3x3dbl_3b: conv(384, 384, [3, 1], 1, [1, 0], device),
            branch_pool: conv(from, 192, [1, 1], 1, [0, 0], device),
            max_pool,
        }
    }

    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = |layer: &BasicConv<B>, x| layer.forward(ops, x);
        let split = |a: &BasicConv<B>, b: &BasicConv<B>, x: Tensor<B, 4>| {
            Tensor::cat(vec![c(a, x.clone()), c(b, x)], 1)
        };
        let b1 = c(&self.branch1x1, x.clone());
        let b3 = c(&self.branch3x3_1, x.clone());
        let b3 = split(&self.branch3x3_2a, &self.branch3x3_2b, b3);
        let dbl = c(&self.branch3x3dbl_2, c(&self.branch3x3dbl_1, x.clone()));
        let dbl = split(&self.branch3x3dbl_3a, &self.branch3x3dbl_3b, dbl);
        let pool = match self.max_pool {
            true => c(
                &self.branch_pool,
                max_pool2d(x, [3, 3], [1, 1], [1, 1], [1, 1], false),
            ),
            false => self.branch_pool.after_average_pool(ops, x),
        };
        Tensor::cat(vec![b1, b3, dbl, pool], 1)
    }
}

/// The network up to pool3, with pytorch-fid's key names in snake case.
#[derive(Module, Debug)]
pub(crate) struct InceptionV3<B: Backend> {
    conv2d_1a_3x3: BasicConv<B>,
    conv2d_2a_3x3: BasicConv<B>,
    conv2d_2b_3x3: BasicConv<B>,
    conv2d_3b_1x1: BasicConv<B>,
    conv2d_4a_3x3: BasicConv<B>,
    mixed_5b: BlockA<B>,
    mixed_5c: BlockA<B>,
    mixed_5d: BlockA<B>,
    mixed_6a: BlockB<B>,
    mixed_6b: BlockC<B>,
    mixed_6c: BlockC<B>,
    mixed_6d: BlockC<B>,
    mixed_6e: BlockC<B>,
    mixed_7a: BlockD<B>,
    mixed_7b: BlockE<B>,
    mixed_7c: BlockE<B>,
}

impl<B: Backend> InceptionV3<B> {
    /// The network with freshly initialised weights (to be loaded).
    pub(crate) fn new(device: &B::Device) -> Self {
        Self {
            conv2d_1a_3x3: conv(3, 32, [3, 3], 2, [0, 0], device),
            conv2d_2a_3x3: conv(32, 32, [3, 3], 1, [0, 0], device),
            conv2d_2b_3x3: conv(32, 64, [3, 3], 1, [1, 1], device),
            conv2d_3b_1x1: conv(64, 80, [1, 1], 1, [0, 0], device),
            conv2d_4a_3x3: conv(80, 192, [3, 3], 1, [0, 0], device),
            mixed_5b: BlockA::new(192, 32, device),
            mixed_5c: BlockA::new(256, 64, device),
            mixed_5d: BlockA::new(288, 64, device),
            mixed_6a: BlockB::new(288, device),
            mixed_6b: BlockC::new(128, device),
            mixed_6c: BlockC::new(160, device),
            mixed_6d: BlockC::new(160, device),
            mixed_6e: BlockC::new(192, device),
            mixed_7a: BlockD::new(device),
            mixed_7b: BlockE::new(1280, false, device),
            mixed_7c: BlockE::new(2048, true, device),
        }
    }

    /// `[N, 3, 299, 299]` in `[-1, 1]` → the pool3 features `[N, 2048]`.
    pub(crate) fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let stem = [
            &self.conv2d_1a_3x3,
            &self.conv2d_2a_3x3,
            &self.conv2d_2b_3x3,
        ];
        let x = stem.iter().fold(x, |x, layer| layer.forward(ops, x));
        let x = max_3x3_down(x);
        let x = self.conv2d_3b_1x1.forward(ops, x);
        let x = max_3x3_down(self.conv2d_4a_3x3.forward(ops, x));
        let x = [&self.mixed_5b, &self.mixed_5c, &self.mixed_5d]
            .iter()
            .fold(x, |x, block| block.forward(ops, x));
        let x = self.mixed_6a.forward(ops, x);
        let x = [
            &self.mixed_6b,
            &self.mixed_6c,
            &self.mixed_6d,
            &self.mixed_6e,
        ]
        .iter()
        .fold(x, |x, block| block.forward(ops, x));
        let x = self.mixed_7a.forward(ops, x);
        let x = self.mixed_7c.forward(ops, self.mixed_7b.forward(ops, x));
        let [n, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, channels])
    }
}
