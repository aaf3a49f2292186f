//! Everything a run is trained with, as one JSON document saved in every checkpoint.

use std::path::PathBuf;

use ddpm_ops::Precision;
use ddpm_schedule::{BetaSchedule, NoiseScheduleConfig, PredictionTarget};
use ddpm_unet::{DdpmUnetConfig, DenoiserConfig, SimpleUnetConfig};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The loss between the model output and its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean absolute error (the seed).
    L1,
    /// Mean squared error (Ho et al.).
    L2,
    /// Huber loss: quadratic below `delta`, linear above.
    Huber {
        /// Where the loss turns linear.
        delta: f64,
    },
}

/// How each sample's loss is weighted by its timestep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossWeighting {
    /// Every sample alike (Ho et al.).
    #[default]
    Uniform,
    /// Min-SNR-γ (Hang et al. 2023): as an error on x_0, each sample weighted min(SNR_t, γ).
    /// Nearly clean timesteps stop dominating the gradient, and short runs converge faster.
    MinSnr {
        /// The cap on the signal-to-noise ratio (5 in the paper).
        gamma: f64,
    },
}

/// Exponential moving average of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// Decay per step once warmed up (0.9999 in Ho et al.).
    pub decay: f64,
    /// The decay ramps up as min(decay, (1 + step) / (10 + step)), so early EMA weights do not
    /// drag a random initialisation along.
    pub warmup: bool,
}

/// Adam with optional warm-up and gradient-norm clipping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Learning rate after warm-up.
    pub learning_rate: f64,
    /// Steps of linear warm-up from 0 to `learning_rate` (0: none).
    pub warmup_steps: u64,
    /// Clip the global gradient norm to this (None: no clipping).
    pub grad_clip_norm: Option<f32>,
    /// Adam's epsilon (PyTorch's default is 1e-8, Burn's 1e-5).
    pub epsilon: f32,
    /// How the rate falls after warm-up. Recipes written before it keep it constant.
    #[serde(default)]
    pub decay: LrDecay,
}

/// The learning rate's course after warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    /// The recipe's rate to the last step.
    #[default]
    Constant,
    /// Half a cosine from the recipe's rate at the end of warm-up down to `final_fraction` of it
    /// at the recipe's last step: a short run ends on small, averaging updates instead of
    /// stopping mid-stride.
    Cosine {
        /// The share of the rate left at the last step.
        final_fraction: f64,
    },
}

impl OptimizerConfig {
    /// The rate of the step that follows `done` steps of a run of `total`: linear warm-up, then
    /// the decay. A pure function of the step, so a resumed run needs no scheduler state (burn's
    /// `CosineAnnealingLrScheduler` keeps a counter of its own and restarts after its span).
    pub fn learning_rate_at(&self, done: u64, total: u64) -> f64 {
        let step = done + 1;
        if step < self.warmup_steps {
            return self.learning_rate * step as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            LrDecay::Constant => self.learning_rate,
            LrDecay::Cosine { final_fraction } => {
                let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.learning_rate * (final_fraction + (1.0 - final_fraction) * cosine)
            }
        }
    }
}

/// A complete training recipe. Every knob is here, and the whole document is stored in each
/// checkpoint, so a run can be reproduced or resumed from it alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The noise schedule.
    pub schedule: NoiseScheduleConfig,
    /// The noise predictor.
    pub model: DenoiserConfig,
    /// What the model predicts.
    pub prediction: PredictionTarget,
    /// The loss on the model output.
    pub loss: LossKind,
    /// How each sample's loss is weighted by its timestep. Recipes written before it are uniform.
    #[serde(default)]
    pub loss_weighting: LossWeighting,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// EMA of the weights (None: off).
    pub ema: Option<EmaConfig>,
    /// Training images: a folder of images or of MNIST IDX files (None: the caller's default;
    /// the `ddpm` binary's is the MNIST digits the repository ships in `data/mnist-t10k/`).
    pub data: Option<PathBuf>,
    /// Side of the square training images.
    pub image_size: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Flip images left-right at random.
    pub random_flip: bool,
    /// Optimisation steps in all.
    pub steps: u64,
    /// Seed of every random choice: data order, timesteps, noise, initial weights.
    pub seed: u64,
    /// Write a sample grid every this many steps (0: never).
    pub sample_every: u64,
    /// Images in each sample grid.
    pub sample_count: usize,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Keep this many most recent checkpoints, plus the best-loss one.
    pub keep_last: usize,
    /// Write a log line and a metrics record every this many steps.
    pub log_every: u64,
    /// The number format of the convolutions and attention: f32, or bf16 with everything else in
    /// f32 (mixed precision). Recipes written before it default to f32.
    #[serde(default)]
    pub precision: Precision,
    /// FID measured during training, if set. Recipes written before it default to none.
    #[serde(default)]
    pub fid: Option<FidConfig>,
}

/// FID measured every `every` steps on `samples` samples (EMA weights when kept) against cached
/// reference statistics, logged to `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidConfig {
    /// Steps between measurements.
    pub every: u64,
    /// Samples per measurement (FID is biased upward below 2,048; compare equal counts).
    pub samples: usize,
    /// DDIM steps per sample (sampling all T DDPM steps makes each measurement T/steps times
    /// slower).
    pub ddim_steps: usize,
    /// Reference statistics written by `ddpm stats`.
    pub reference: PathBuf,
    /// pytorch-fid's FID Inception weights.
    pub inception: PathBuf,
}

/// The named recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The seed's recipe: T = 300 linear, SimpleUnet, L1 on the noise, Adam 1e-3, 32 px, batch 512.
    Seed,
    /// Ho et al.'s CIFAR-10 recipe: T = 1000, the paper's U-Net, L2, Adam 2e-4 with 5,000 warm-up
    /// steps, clipping at 1.0, dropout 0.1, flips, EMA 0.9999, batch 128.
    DdpmCifar10,
    /// A small CPU recipe for the bundled MNIST digits: recognisable samples in minutes on 2 cores.
    CpuDemo,
}

impl Preset {
    /// Every preset, in the order help texts list them.
    pub const ALL: [Preset; 3] = [Preset::Seed, Preset::DdpmCifar10, Preset::CpuDemo];

    /// The name `--preset` takes and run folders default to.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Seed => "seed",
            Preset::DdpmCifar10 => "ddpm-cifar10",
            Preset::CpuDemo => "cpu-demo",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|preset| preset.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown preset '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

impl TrainConfig {
    /// The recipe of a preset.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Seed => Self {
                schedule: NoiseScheduleConfig::new(),
                model: DenoiserConfig::SimpleUnet(SimpleUnetConfig::new()),
                prediction: PredictionTarget::Noise,
                loss: LossKind::L1,
                loss_weighting: LossWeighting::Uniform,
                optimizer: OptimizerConfig {
                    learning_rate: 1e-3,
                    warmup_steps: 0,
                    grad_clip_norm: None,
                    epsilon: 1e-8,
                    decay: LrDecay::Constant,
                },
                ema: None,
                data: None,
                image_size: 32,
                batch_size: 512,
                random_flip: false,
                steps: 10_000,
                seed: 0,
                sample_every: 500,
                sample_count: 16,
                checkpoint_every: 1_000,
                keep_last: 3,
                log_every: 10,
                precision: Precision::F32,
                fid: None,
            },
            Preset::DdpmCifar10 => Self {
                schedule: NoiseScheduleConfig::new().with_num_timesteps(1000),
                model: DenoiserConfig::DdpmUnet(DdpmUnetConfig::new()),
                prediction: PredictionTarget::Noise,
                loss: LossKind::L2,
                loss_weighting: LossWeighting::Uniform,
                optimizer: OptimizerConfig {
                    learning_rate: 2e-4,
                    warmup_steps: 5_000,
                    grad_clip_norm: Some(1.0),
                    epsilon: 1e-8,
                    decay: LrDecay::Constant,
                },
                ema: Some(EmaConfig {
                    decay: 0.9999,
                    warmup: false,
                }),
                data: Some(PathBuf::from("data/cifar10/train")),
                image_size: 32,
                batch_size: 128,
                random_flip: true,
                steps: 800_000,
                seed: 0,
                sample_every: 10_000,
                sample_count: 64,
                checkpoint_every: 10_000,
                keep_last: 3,
                log_every: 100,
                precision: Precision::F32,
                fid: None,
            },
            Preset::CpuDemo => Self {
                schedule: NoiseScheduleConfig::new()
                    .with_beta_schedule(BetaSchedule::Cosine)
                    .with_num_timesteps(200),
                // The paper's U-Net at its smallest sensible size: three levels (16, 8, 4 px), one
                // residual block each, attention only in the middle, no dropout. At equal wall
                // time it draws more recognisable digits than a SimpleUnet (docs/DEMO.md).
                model: DenoiserConfig::DdpmUnet(
                    DdpmUnetConfig::new()
                        .with_image_channels(1)
                        .with_image_size(16)
                        .with_base_channels(16)
                        .with_channel_multipliers(vec![1, 2, 2])
                        .with_num_res_blocks(1)
                        .with_attention_resolutions(vec![])
                        .with_dropout(0.0)
                        .with_norm_groups(8),
                ),
                // Predicting x_0 weighs every noise level alike as an error on the image, where
                // predicting the noise spends a small model on nearly clean steps (docs/DEMO.md).
                prediction: PredictionTarget::Sample,
                loss: LossKind::L2,
                loss_weighting: LossWeighting::Uniform,
                optimizer: OptimizerConfig {
                    learning_rate: 2e-3,
                    warmup_steps: 100,
                    grad_clip_norm: Some(1.0),
                    epsilon: 1e-8,
                    decay: LrDecay::Cosine {
                        final_fraction: 0.05,
                    },
                },
                ema: Some(EmaConfig {
                    decay: 0.995,
                    warmup: true,
                }),
                data: None,
                image_size: 16,
                batch_size: 64,
                random_flip: false,
                // Sized for about five minutes on a 2-core CPU (docs/DEMO.md has the recipes
                // measured against it).
                steps: 3_000,
                seed: 0,
                sample_every: 500,
                sample_count: 64,
                checkpoint_every: 500,
                keep_last: 2,
                log_every: 10,
                precision: Precision::F32,
                fid: None,
            },
        }
    }

    /// Reads a recipe written as JSON (the `config` of any checkpoint's `state.json`).
    pub fn load(path: &std::path::Path) -> Result<Self, TrainError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config(format!("cannot read {shown}: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| TrainError::Config(format!("{shown} is not a training recipe: {e}")))
    }

    /// Checks what the architecture and the loop need, before anything is loaded.
    pub fn validate(&self) -> Result<(), TrainError> {
        let fail = |msg: String| Err(TrainError::Config(msg));
        let multiple = self.model.size_multiple();
        if self.image_size == 0 || !self.image_size.is_multiple_of(multiple) {
            return fail(format!(
                "image_size {} must be a positive multiple of {multiple} for this model (each level halves it)",
                self.image_size
            ));
        }
        if self.batch_size == 0 || self.steps == 0 || self.sample_count == 0 || self.log_every == 0
        {
            return fail("batch_size, steps, sample_count and log_every must be at least 1".into());
        }
        if !is_positive(self.optimizer.learning_rate) {
            return fail(format!(
                "learning_rate must be positive, got {}",
                self.optimizer.learning_rate
            ));
        }
        if let Some(ema) = self.ema
            && !(0.0..1.0).contains(&ema.decay)
        {
            return fail(format!("ema decay must be in [0, 1), got {}", ema.decay));
        }
        if let LossWeighting::MinSnr { gamma } = self.loss_weighting
            && !is_positive(gamma)
        {
            return fail(format!("min-SNR gamma must be positive, got {gamma}"));
        }
        if let LossKind::Huber { delta } = self.loss
            && !is_positive(delta)
        {
            return fail(format!("huber delta must be positive, got {delta}"));
        }
        if let Some(fid) = &self.fid
            && (fid.every == 0 || fid.samples < 2 || fid.ddim_steps == 0)
        {
            return fail("fid needs every, ddim_steps >= 1 and samples >= 2".into());
        }
        if !matches!(self.model.image_channels(), 1 | 3) {
            return fail("the model must have 1 or 3 image channels".into());
        }
        self.schedule
            .init()
            .map(drop)
            .map_err(|e| TrainError::Config(format!("noise schedule: {e}")))
    }
}

/// True for a positive number; false for zero, negatives and NaN.
fn is_positive(value: f64) -> bool {
    value > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optimizer(warmup_steps: u64, decay: LrDecay) -> OptimizerConfig {
        OptimizerConfig {
            learning_rate: 1.0,
            warmup_steps,
            grad_clip_norm: None,
            epsilon: 1e-8,
            decay,
        }
    }

    #[test]
    fn warm_up_then_constant() {
        let o = optimizer(4, LrDecay::Constant);
        let rates: Vec<f64> = (0..6).map(|done| o.learning_rate_at(done, 10)).collect();
        assert_eq!(rates, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn cosine_falls_from_the_end_of_warm_up_to_the_final_fraction() {
        let o = optimizer(
            2,
            LrDecay::Cosine {
                final_fraction: 0.1,
            },
        );
        assert_eq!(o.learning_rate_at(0, 10), 0.5);
        assert_eq!(o.learning_rate_at(1, 10), 1.0);
        // Halfway through the 8 steps after warm-up: halfway between 1 and 0.1.
        assert!((o.learning_rate_at(5, 10) - 0.55).abs() < 1e-12);
        assert!((o.learning_rate_at(9, 10) - 0.1).abs() < 1e-12);
        // Steps past the recipe's end (a resumed run given more) stay at the floor.
        assert!((o.learning_rate_at(20, 10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn recipes_without_a_decay_read_as_constant() {
        let json =
            r#"{"learning_rate":0.001,"warmup_steps":0,"grad_clip_norm":null,"epsilon":1e-8}"#;
        let o: OptimizerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(o.decay, LrDecay::Constant);
    }
}
