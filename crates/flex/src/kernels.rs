//! The tables this crate makes for burn-flex ([`FlexKernels`]).

use ddpm_ops::{AdamOps, BurnHeavy, GatheredHeavy, KernelTables, Ops, Precision, TableError};
use ddpm_ops::{HeavyKernels, TrainingOps};

use crate::tensor::{Flex, FlexAutodiff};
use crate::{adam, attention, concat, conv, dropout, group_norm, norm};

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
            (false, true) => ops = ops.with_gathering(),
            (false, false) => {}
        }
        ops
    }
}

impl KernelTables for FlexKernels {
    type Backend = Flex;
    type Autodiff = FlexAutodiff;

    fn inference(&self, precision: Precision) -> Result<Ops<Flex>, TableError> {
        self.check(precision)?;
        Ok(self.heavy_in(self.inference(), precision))
    }

    fn training(&self, precision: Precision) -> Result<TrainingOps<FlexAutodiff>, TableError> {
        self.check(precision)?;
        let tables = self.training();
        Ok(TrainingOps {
            training: self.heavy_in(tables.training, precision),
            inner: self.heavy_in(tables.inner, precision),
        })
    }
}

impl FlexKernels {
    /// The convolution and attention kernels compute in f32 only: bf16 is refused while they
    /// are on rather than computed by burn in their place.
    fn check(&self, precision: Precision) -> Result<(), TableError> {
        match precision == Precision::Bf16 && (self.conv || self.attention) {
            true => Err(TableError::Precision {
                kernels: "ddpm-flex's convolution and attention kernels",
                precision,
                hint: "pass --own-conv false --own-attention false to run burn's operations in bf16",
            }),
            false => Ok(()),
        }
    }

    /// `ops` with its heavy entries in `precision`: as they are in f32; in bf16 (the own
    /// kernels being off, [`Self::check`]) burn's, gathered as the settings say.
    fn heavy_in<B>(&self, ops: Ops<B>, precision: Precision) -> Ops<B>
    where
        B: burn::tensor::backend::Backend,
        BurnHeavy: HeavyKernels<B>,
    {
        match (precision, self.gathering) {
            (Precision::F32, _) => ops,
            (_, true) => ops.with_heavy::<GatheredHeavy>(precision),
            (_, false) => ops.with_heavy::<BurnHeavy>(precision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_refused_with_the_own_kernels_and_runs_burns_without_them() {
        let all = FlexKernels::default();
        let err = KernelTables::training(&all, Precision::Bf16).unwrap_err();
        assert!(err.to_string().contains("--own-conv false"), "{err}");
        let burns = FlexKernels {
            conv: false,
            attention: false,
            winograd: false,
            ..all
        };
        let tables = KernelTables::training(&burns, Precision::Bf16).unwrap();
        assert_eq!(tables.training.precision, Precision::Bf16);
        assert_eq!(tables.inner.precision, Precision::Bf16);
        assert!(tables.inner.adam.step.is_some(), "Adam's kernel stays");
        let f32s = KernelTables::inference(&all, Precision::F32).unwrap();
        assert_eq!(f32s.precision, Precision::F32);
    }
}
