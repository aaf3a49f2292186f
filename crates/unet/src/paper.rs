//! The U-Net of Ho et al. (2020), as in their CIFAR-10 model.
//!
//! Parameter names follow the common PyTorch port of the authors' TensorFlow code
//! (`temb.dense.0`, `down.1.attn.0.q`, `mid.block_1`, `up.3.upsample.conv`, …), so its converted
//! checkpoints map one to one.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, backend::Backend};
use ddpm_ops::Ops;

use crate::layers::{conv2d, group_norm};
use crate::{NoisePredictor, UnetError, sinusoidal_embedding};

/// Shape of a [`DdpmUnet`]. Defaults are the paper's CIFAR-10 model (35,746,307 parameters).
#[derive(Config, Debug, PartialEq)]
pub struct DdpmUnetConfig {
    /// Channels of the images.
    #[config(default = 3)]
    pub image_channels: usize,
    /// Side of the training images; with `attention_resolutions` it says where attention goes.
    #[config(default = 32)]
    pub image_size: usize,
    /// Channels of the first level; level i has `base_channels × channel_multipliers[i]`.
    #[config(default = 128)]
    pub base_channels: usize,
    /// One multiplier per resolution level; every level but the last halves the resolution.
    #[config(default = "vec![1, 2, 2, 2]")]
    pub channel_multipliers: Vec<usize>,
    /// Residual blocks per level on the way down (one more on the way up).
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// Resolutions (image sides) at which self-attention follows each residual block.
    #[config(default = "vec![16]")]
    pub attention_resolutions: Vec<usize>,
    /// Dropout inside residual blocks, active in training only.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Groups of every GroupNorm; each level's channels must be a multiple.
    #[config(default = 32)]
    pub norm_groups: usize,
}

impl DdpmUnetConfig {
    /// Checks the config and builds the model with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<DdpmUnet<B>, UnetError> {
        self.validate()?;
        let ch = self.base_channels;
        let temb_ch = 4 * ch;
        let levels = self.channel_multipliers.len();
        let res_block = |from: usize, to: usize| self.res_block(from, to, temb_ch, device);
        let attn = |channels: usize| self.attn_block(channels, device);

        let mut resolution = self.image_size;
        let mut block_in = ch;
        let mut skip_channels = vec![ch];
        let mut down = Vec::with_capacity(levels);
        for (level, &mult) in self.channel_multipliers.iter().enumerate() {
            let block_out = ch * mult;
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for _ in 0..self.num_res_blocks {
                blocks.push(res_block(block_in, block_out));
                block_in = block_out;
                if self.attention_resolutions.contains(&resolution) {
                    attns.push(attn(block_in));
                }
                skip_channels.push(block_in);
            }
            let downsample = (level + 1 < levels).then(|| {
                resolution /= 2;
                skip_channels.push(block_in);
                Downsample {
                    conv: Conv2dConfig::new([block_in, block_in], [3, 3])
                        .with_stride([2, 2])
                        // TensorFlow's SAME padding for a stride-2 3x3 conv on even sides.
                        .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
                        .init(device),
                }
            });
            down.push(DownLevel {
                block: blocks,
                attn: attns,
                downsample,
            });
        }

        let mid = Mid {
            block_1: res_block(block_in, block_in),
            attn_1: attn(block_in),
            block_2: res_block(block_in, block_in),
        };

        let mut up = Vec::with_capacity(levels);
        for (level, &mult) in self.channel_multipliers.iter().enumerate().rev() {
            let block_out = ch * mult;
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for _ in 0..=self.num_res_blocks {
                let skip = skip_channels.pop().expect("one skip per down output");
                blocks.push(res_block(block_in + skip, block_out));
                block_in = block_out;
                if self.attention_resolutions.contains(&resolution) {
                    attns.push(attn(block_in));
                }
            }
            let upsample = (level > 0).then(|| {
                resolution *= 2;
                Upsample {
                    conv: conv3x3(block_in, block_in, device),
                }
            });
            up.push(UpLevel {
                block: blocks,
                attn: attns,
                upsample,
            });
        }
        // Stored by level, as the reference implementation does.
        up.reverse();

        Ok(DdpmUnet {
            temb: TimeEmbedding {
                dense: vec![
                    LinearConfig::new(ch, temb_ch).init(device),
                    LinearConfig::new(temb_ch, temb_ch).init(device),
                ],
            },
            conv_in: conv3x3(self.image_channels, ch, device),
            down,
            mid,
            up,
            norm_out: self.group_norm(block_in, device),
            conv_out: conv3x3(block_in, self.image_channels, device),
            base_channels: ch,
            image_channels: self.image_channels,
        })
    }

    fn validate(&self) -> Result<(), UnetError> {
        let fail = |msg: String| Err(UnetError::InvalidConfig(msg));
        if self.image_channels == 0 || self.num_res_blocks == 0 {
            return fail("image_channels and num_res_blocks must be at least 1".into());
        }
        if self.base_channels < 4 || !self.base_channels.is_multiple_of(2) {
            return fail(format!(
                "base_channels must be even and at least 4 (it is also the time embedding width), got {}",
                self.base_channels
            ));
        }
        if self.channel_multipliers.is_empty() || self.channel_multipliers.contains(&0) {
            return fail(format!(
                "channel_multipliers must be non-empty and positive, got {:?}",
                self.channel_multipliers
            ));
        }
        let groups = self.norm_groups;
        if groups == 0
            || !self
                .channel_multipliers
                .iter()
                .all(|m| (m * self.base_channels).is_multiple_of(groups))
        {
            return fail(format!(
                "every level's channels (base_channels x multiplier) must be a multiple of norm_groups = {groups}"
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    fn group_norm<B: Backend>(&self, channels: usize, device: &B::Device) -> GroupNorm<B> {
        GroupNormConfig::new(self.norm_groups, channels)
            .with_epsilon(1e-6)
            .init(device)
    }

    fn res_block<B: Backend>(
        &self,
        from: usize,
        to: usize,
        temb_channels: usize,
        device: &B::Device,
    ) -> ResBlock<B> {
        ResBlock {
            norm1: self.group_norm(from, device),
            conv1: conv3x3(from, to, device),
            temb_proj: LinearConfig::new(temb_channels, to).init(device),
            norm2: self.group_norm(to, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            conv2: conv3x3(to, to, device),
            nin_shortcut: (from != to).then(|| Conv2dConfig::new([from, to], [1, 1]).init(device)),
        }
    }

    fn attn_block<B: Backend>(&self, channels: usize, device: &B::Device) -> AttnBlock<B> {
        let conv1x1 = || Conv2dConfig::new([channels, channels], [1, 1]).init(device);
        AttnBlock {
            norm: self.group_norm(channels, device),
            q: conv1x1(),
            k: conv1x1(),
            v: conv1x1(),
            proj_out: conv1x1(),
        }
    }
}

fn conv3x3<B: Backend>(from: usize, to: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([from, to], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// The DDPM paper's noise predictor (Ho et al. 2020, CIFAR-10 architecture).
#[derive(Module, Debug)]
pub struct DdpmUnet<B: Backend> {
    temb: TimeEmbedding<B>,
    conv_in: Conv2d<B>,
    down: Vec<DownLevel<B>>,
    mid: Mid<B>,
    up: Vec<UpLevel<B>>,
    norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
    base_channels: usize,
    image_channels: usize,
}

/// Sinusoidal embedding → Linear → SiLU → Linear.
#[derive(Module, Debug)]
struct TimeEmbedding<B: Backend> {
    dense: Vec<Linear<B>>,
}

#[derive(Module, Debug)]
struct DownLevel<B: Backend> {
    block: Vec<ResBlock<B>>,
    attn: Vec<AttnBlock<B>>,
    downsample: Option<Downsample<B>>,
}

#[derive(Module, Debug)]
struct UpLevel<B: Backend> {
    block: Vec<ResBlock<B>>,
    attn: Vec<AttnBlock<B>>,
    upsample: Option<Upsample<B>>,
}

#[derive(Module, Debug)]
struct Mid<B: Backend> {
    block_1: ResBlock<B>,
    attn_1: AttnBlock<B>,
    block_2: ResBlock<B>,
}

/// GroupNorm → SiLU → conv, + time projection, GroupNorm → SiLU → dropout → conv, + shortcut.
#[derive(Module, Debug)]
struct ResBlock<B: Backend> {
    norm1: GroupNorm<B>,
    conv1: Conv2d<B>,
    temb_proj: Linear<B>,
    norm2: GroupNorm<B>,
    dropout: Dropout,
    conv2: Conv2d<B>,
    nin_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResBlock<B> {
    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        let h = conv2d(
            ops,
            &self.conv1,
            group_norm(ops, &self.norm1, x.clone(), true),
        );
        let shape = h.dims();
        let [n, c, height, width] = shape;
        // Added as `[N, C, H·W] + [N, C, 1]`: a value per contiguous row, which CPU backends
        // broadcast without a strided walk over `[1, 1, H, W]`.
        let temb = self.temb_proj.forward(silu(temb)).reshape([n, c, 1]);
        let h = (h.reshape([n, c, height * width]) + temb).reshape(shape);
        let h = group_norm(ops, &self.norm2, h, true);
        let h = conv2d(ops, &self.conv2, (ops.dropout)(h, self.dropout.prob));
        let shortcut = match &self.nin_shortcut {
            Some(conv) => conv2d(ops, conv, x),
            None => x,
        };
        shortcut + h
    }
}

/// Single-head self-attention over all positions, with a residual connection.
#[derive(Module, Debug)]
struct AttnBlock<B: Backend> {
    norm: GroupNorm<B>,
    q: Conv2d<B>,
    k: Conv2d<B>,
    v: Conv2d<B>,
    proj_out: Conv2d<B>,
}

impl<B: Backend> AttnBlock<B> {
    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, height, width] = x.dims();
        let h = group_norm(ops, &self.norm, x.clone(), false);
        let project =
            |conv: &Conv2d<B>| conv2d(ops, conv, h.clone()).reshape([n, c, height * width]);
        let attended = (ops.attention)(project(&self.q), project(&self.k), project(&self.v));
        x + conv2d(ops, &self.proj_out, attended.reshape([n, c, height, width]))
    }
}

/// Stride-2 3x3 convolution.
#[derive(Module, Debug)]
struct Downsample<B: Backend> {
    conv: Conv2d<B>,
}

/// Nearest-neighbour ×2, then a 3x3 convolution.
#[derive(Module, Debug)]
struct Upsample<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Upsample<B> {
    fn forward(&self, ops: &Ops<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, height, width] = x.dims();
        let options = InterpolateOptions::new(InterpolateMode::Nearest);
        conv2d(
            ops,
            &self.conv,
            interpolate(x, [2 * height, 2 * width], options),
        )
    }
}

impl<B: Backend> DdpmUnet<B> {
    /// The model output for x_t `[N, C, H, W]` at timesteps `t: [N]`, by burn's operations.
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
        let temb = sinusoidal_embedding(t, self.base_channels);
        let temb = self.temb.dense[1].forward(silu(self.temb.dense[0].forward(temb)));

        let mut skips = vec![conv2d(ops, &self.conv_in, x)];
        for level in &self.down {
            for (i, block) in level.block.iter().enumerate() {
                let last = skips.last().expect("non-empty").clone();
                let mut h = block.forward(ops, last, temb.clone());
                if let Some(attn) = level.attn.get(i) {
                    h = attn.forward(ops, h);
                }
                skips.push(h);
            }
            if let Some(downsample) = &level.downsample {
                let last = skips.last().expect("non-empty").clone();
                skips.push(conv2d(ops, &downsample.conv, last));
            }
        }

        let h = skips.last().expect("non-empty").clone();
        let h = self.mid.block_1.forward(ops, h, temb.clone());
        let h = self.mid.attn_1.forward(ops, h);
        let mut h = self.mid.block_2.forward(ops, h, temb.clone());

        for level in self.up.iter().rev() {
            for (i, block) in level.block.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up block");
                h = block.forward(ops, (ops.concat_channels)(h, skip), temb.clone());
                if let Some(attn) = level.attn.get(i) {
                    h = attn.forward(ops, h);
                }
            }
            if let Some(upsample) = &level.upsample {
                h = upsample.forward(ops, h);
            }
        }
        conv2d(
            ops,
            &self.conv_out,
            group_norm(ops, &self.norm_out, h, true),
        )
    }
}

impl<B: Backend> NoisePredictor<B> for DdpmUnet<B> {
    fn predict_with(&self, ops: &Ops<B>, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.forward_with(ops, x_t, t)
    }

    fn image_channels(&self) -> usize {
        self.image_channels
    }

    fn size_multiple(&self) -> usize {
        1 << (self.down.len() - 1)
    }
}
