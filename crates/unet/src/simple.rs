//! The seed's SimpleUnet, layer for layer, with the seed's parameter names.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Int, Tensor, backend::Backend};

use ddpm_ops::Ops;

use crate::batch_norm::relu_batch_norm_2d;
use crate::layers::{conv_transpose2d, conv2d};
use crate::{NoisePredictor, UnetError, sinusoidal_embedding};

/// Shape of a [`SimpleUnet`]. Defaults are the seed's: RGB, channels 64 → 1024, time embedding 32.
#[derive(Config, Debug, PartialEq)]
pub struct SimpleUnetConfig {
    /// Channels of the images (3 for RGB, 1 for MNIST-like data).
    #[config(default = 3)]
    pub image_channels: usize,
    /// Channels after `conv0` and after each down block; the up blocks mirror them.
    #[config(default = "vec![64, 128, 256, 512, 1024]")]
    pub channels: Vec<usize>,
    /// Width of the sinusoidal time embedding and of its MLP.
    #[config(default = 32)]
    pub time_embedding_dim: usize,
}

impl SimpleUnetConfig {
    /// Checks the config and builds the model with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SimpleUnet<B>, UnetError> {
        self.validate()?;
        let dim = self.time_embedding_dim;
        let conv3 = |from: usize, to: usize| {
            Conv2dConfig::new([from, to], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let block = |from: usize, to: usize, up: bool| Block {
            time_mlp: LinearConfig::new(dim, to).init(device),
            // An up block sees its input concatenated with the skip connection.
            conv1: conv3(if up { 2 * from } else { from }, to),
            conv2: conv3(to, to),
            bnorm1: BatchNormConfig::new(to).init(device),
            bnorm2: BatchNormConfig::new(to).init(device),
            transform: if up {
                Resample::Up(
                    ConvTranspose2dConfig::new([to, to], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .init(device),
                )
            } else {
                Resample::Down(
                    Conv2dConfig::new([to, to], [4, 4])
                        .with_stride([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(device),
                )
            },
        };
        let down = &self.channels;
        let up: Vec<usize> = down.iter().rev().copied().collect();
        Ok(SimpleUnet {
            time_mlp: LinearConfig::new(dim, dim).init(device),
            conv0: conv3(self.image_channels, down[0]),
            downs: down.windows(2).map(|c| block(c[0], c[1], false)).collect(),
            ups: up.windows(2).map(|c| block(c[0], c[1], true)).collect(),
            output: Conv2dConfig::new([up[up.len() - 1], self.image_channels], [1, 1]).init(device),
            time_embedding_dim: dim,
            image_channels: self.image_channels,
        })
    }

    fn validate(&self) -> Result<(), UnetError> {
        let fail = |msg: String| Err(UnetError::InvalidConfig(msg));
        if self.image_channels == 0 {
            return fail("image_channels must be at least 1".into());
        }
        if self.channels.len() < 2 || self.channels.contains(&0) {
            return fail(format!(
                "channels must list at least two positive widths, got {:?}",
                self.channels
            ));
        }
        if self.time_embedding_dim < 4 || !self.time_embedding_dim.is_multiple_of(2) {
            return fail(format!(
                "time_embedding_dim must be even and at least 4, got {}",
                self.time_embedding_dim
            ));
        }
        Ok(())
    }
}

/// The seed's noise predictor: a plain conv U-Net with ReLU → BatchNorm blocks, a sinusoidal
/// time embedding added in every block, and channel-concatenated skips.
///
/// Field names are the seed's PyTorch names, so checkpoints map one to one.
#[derive(Module, Debug)]
pub struct SimpleUnet<B: Backend> {
    /// Linear after the sinusoidal embedding (the seed's `time_mlp.1`).
    time_mlp: Linear<B>,
    conv0: Conv2d<B>,
    downs: Vec<Block<B>>,
    ups: Vec<Block<B>>,
    output: Conv2d<B>,
    time_embedding_dim: usize,
    image_channels: usize,
}

/// Down (`Conv2d` 4×4 stride 2) or up (`ConvTranspose2d` 4×4 stride 2) resampling.
#[derive(Module, Debug)]
enum Resample<B: Backend> {
    Down(Conv2d<B>),
    Up(ConvTranspose2d<B>),
}

/// conv1 → ReLU → BatchNorm, + ReLU(Linear(t_emb)), conv2 → ReLU → BatchNorm, resample.
#[derive(Module, Debug)]
struct Block<B: Backend> {
    time_mlp: Linear<B>,
    conv1: Conv2d<B>,
    transform: Resample<B>,
    conv2: Conv2d<B>,
    bnorm1: BatchNorm<B>,
    bnorm2: BatchNorm<B>,
}

impl<B: Backend> Block<B> {
    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>, time: Tensor<B, 2>) -> Tensor<B, 4> {
        // The seed's order: ReLU before BatchNorm.
        // The time embedding is added to every pixel after bnorm1: folded into its affine step.
        let time = relu(self.time_mlp.forward(time));
        let h = conv2d(ops, &self.conv1, x);
        let h = relu_batch_norm_2d(ops, &self.bnorm1, h, Some(time));
        let h = relu_batch_norm_2d(ops, &self.bnorm2, conv2d(ops, &self.conv2, h), None);
        match &self.transform {
            Resample::Down(conv) => conv2d(ops, conv, h),
            Resample::Up(conv) => conv_transpose2d(ops, conv, h),
        }
    }
}

impl<B: Backend> SimpleUnet<B> {
    /// The model output for x_t `[N, C, H, W]` at timesteps `t: [N]`, by burn's operations; H and
    /// W must be multiples of [`NoisePredictor::size_multiple`].
    pub fn forward(&self, x: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.forward_with(&Ops::burn(), x, t)
    }

    /// [`forward`](Self::forward) with the operations of `ops`.
    pub fn forward_with(
        &self,
        ops: &Ops<B>,
        x: Tensor<B, 4>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, 4> {
        let time = relu(
            self.time_mlp
                .forward(sinusoidal_embedding(t, self.time_embedding_dim)),
        );
        let mut x = conv2d(ops, &self.conv0, x);
        let mut skips = Vec::with_capacity(self.downs.len());
        for down in &self.downs {
            x = down.forward(ops, x, time.clone());
            skips.push(x.clone());
        }
        for up in &self.ups {
            let skip = skips.pop().expect("one skip per down block");
            x = up.forward(ops, (ops.concat_channels)(x, skip), time.clone());
        }
        conv2d(ops, &self.output, x)
    }
}

impl<B: Backend> NoisePredictor<B> for SimpleUnet<B> {
    fn predict_with(&self, ops: &Ops<B>, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.forward_with(ops, x_t, t)
    }

    fn image_channels(&self) -> usize {
        self.image_channels
    }

    fn size_multiple(&self) -> usize {
        1 << self.downs.len()
    }
}
