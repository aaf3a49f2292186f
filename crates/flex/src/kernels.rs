//! The tables this crate makes: for burn-flex ([`FlexKernels`]), and for CPU backends without
//! kernels of their own ([`cpu_ops`]).

use burn::tensor::backend::{AutodiffBackend, Backend};
use ddpm_ops::{AdamOps, Ops, TrainingOps};

use crate::tensor::{Flex, FlexAutodiff};
use crate::{adam, attention, concat, conv, dropout, gather, group_norm, norm};

/// Which of this crate's kernels the flex tables use; what is off is burn's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlexKernels {
    /// Convolutions and transposed convolutions by batch-parallel kernels with their own backward
    /// pass, and skip concatenations with a parallel backward pass.
    pub conv: bool,
    /// Normalisations in parallel passes: SimpleUnet's ReLU + BatchNorm (one each way) and the
    /// paper U-Net's GroupNorm + SiLU (two each way).
    pub norm: bool,
    /// Attention as batched products over strided views with a fused softmax, each way.
    pub attention: bool,
    /// Dropout in one parallel pass each way, the mask hashed from a seed that burn's random
    /// state draws (other draws than burn's `Dropout`).
    pub dropout: bool,
    /// Adam's step in one parallel pass per parameter (burn's values to the bit).
    pub adam: bool,
    /// Narrow deep layers as one matrix product over the batch, where that beats the
    /// convolutions.
    pub gathering: bool,
    /// With `conv`, the wide 3×3 stride-1 layers (64 channels on 16×16 maps and up, 256 on
    /// 8×8) by Winograd's F(4×4, 3×3) in all three passes: 4× fewer multiplications, rounding
    /// errors some tens of times a direct product's (a few 1e-6 of the largest output).
    pub winograd: bool,
}

impl Default for FlexKernels {
    /// Every kernel.
    fn default() -> Self {
        Self {
            conv: true,
            norm: true,
            attention: true,
            dropout: true,
            adam: true,
            gathering: true,
            winograd: true,
        }
    }
}

impl FlexKernels {
    /// The table for inference on flex; its Adam entries serve the training table's optimiser.
    pub fn inference(&self) -> Ops<Flex> {
        let mut ops = self.convolutions::<Flex>();
        if self.conv {
            ops.concat_channels = concat::concat;
        }
        if self.norm {
            ops.relu_scale_shift = norm::relu_scale_shift;
            ops.group_norm = group_norm::group_norm;
        }
        if self.attention {
            ops.attention = attention::attention;
        }
        ops.adam = AdamOps {
            step: self
                .adam
                .then_some(adam::step as ddpm_ops::AdamStepFn<Flex>),
            concurrent: true,
        };
        ops
    }

    /// The tables for training on flex's autodiff decorator.
    pub fn training(&self) -> TrainingOps<FlexAutodiff> {
        let mut ops = self.convolutions::<FlexAutodiff>();
        if self.conv {
            ops.concat_channels = concat::concat_tracked;
        }
        if self.norm {
            ops.relu_batch_norm = norm::relu_batch_norm;
            ops.group_norm = group_norm::group_norm_tracked;
        }
        if self.attention {
            ops.attention = attention::attention_tracked;
        }
        if self.dropout {
            ops.dropout = dropout::dropout_tracked;
        }
        TrainingOps {
            training: ops,
            inner: self.inference(),
        }
    }

    /// burn's table with the convolution entries these settings ask for.
    fn convolutions<B: conv::OwnConv>(&self) -> Ops<B> {
        let mut ops = Ops::burn();
        match (self.conv, self.gathering) {
            (true, true) => {
                ops.conv2d = match self.winograd {
                    true => conv::conv2d_gathering::<B, true>,
                    false => conv::conv2d_gathering::<B, false>,
                };
                ops.conv_transpose2d = conv::conv_transpose2d_gathering::<B>;
            }
            (true, false) => {
                ops.conv2d = match self.winograd {
                    true => conv::conv2d::<B, true>,
                    false => conv::conv2d::<B, false>,
                };
                ops.conv_transpose2d = conv::conv_transpose2d::<B>;
            }
            (false, true) => ops = with_gathering(ops),
            (false, false) => {}
        }
        ops
    }
}

/// `ops` with its convolution entries replaced by burn's convolutions gathered over the batch
/// where that beats them; for tables whose convolutions are
/// burn's.
pub fn with_gathering<B: Backend>(mut ops: Ops<B>) -> Ops<B> {
    ops.conv2d = gather::conv::conv2d::<B>;
    ops.conv_transpose2d = gather::conv_transpose::conv_transpose2d::<B>;
    ops
}

/// The table for a CPU backend without kernels of its own (burn-ndarray): burn's operations,
/// with the narrow deep convolutions gathered over the batch if `gathering`, and Adam stepping
/// the parameters concurrently.
pub fn cpu_ops<B: Backend>(gathering: bool) -> Ops<B> {
    let mut ops = Ops::burn();
    if gathering {
        ops = with_gathering(ops);
    }
    ops.adam.concurrent = true;
    ops
}

/// [`cpu_ops`] for both backends of a training run.
pub fn cpu_training_ops<B: AutodiffBackend>(gathering: bool) -> TrainingOps<B> {
    TrainingOps {
        training: cpu_ops(gathering),
        inner: cpu_ops(gathering),
    }
}
