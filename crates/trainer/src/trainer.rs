//! A training run's state (model, optimiser, EMA, step) and its step.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::record::Recorder;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use ddpm_dataset::random_horizontal_flip;
use ddpm_ops::{Ops, TrainingOps};
use ddpm_schedule::{ForwardProcess, NoiseSchedule};
use ddpm_unet::{Denoiser, NoisePredictor};

use crate::checkpoint::{
    CheckpointState, Save, checkpoint_name, load_record, read_state, recorder, resolve_checkpoint,
};
use crate::ema::update_ema;
use crate::loss::{loss, weighted_loss};
use crate::optimizer::ThreadedAdam;
use crate::{LossWeighting, TrainConfig, TrainError};

/// A model being trained on backend `B`: its weights, Adam's state, the EMA copy and the step
/// count, with the tables it computes with.
///
/// [`Trainer::step`] is one optimiser step on a batch; [`Trainer::run`] is the whole loop over
/// a dataset, with logs, sample grids and checkpoints.
pub struct Trainer<B: AutodiffBackend> {
    pub(crate) config: TrainConfig,
    pub(crate) ops: TrainingOps<B>,
    /// Taken out for the optimiser's step, which updates the weights in place when it owns them.
    model: Option<Denoiser<B>>,
    optim: ThreadedAdam<Denoiser<B>, B>,
    ema: Option<Denoiser<B::InnerBackend>>,
    pub(crate) schedule: NoiseSchedule,
    forward: ForwardProcess<B>,
    step: u64,
    /// The smoothed loss of the checkpoint resumed from, if any.
    pub(crate) resumed_loss: Option<f64>,
    pub(crate) last_checkpoint: Option<PathBuf>,
    pub(crate) device: B::Device,
    /// Failures the crate's tests inject.
    #[cfg(test)]
    pub(crate) fault: Option<crate::run::Fault>,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A fresh model for `config`, its weights drawn from `config.seed`, computing with `ops`
    /// (whose precision must be the recipe's: a kernel crate makes its tables in a precision,
    /// `ddpm_ops::KernelTables`).
    pub fn new(
        config: &TrainConfig,
        ops: TrainingOps<B>,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        for table in [ops.training.precision, ops.inner.precision] {
            if table != config.precision {
                return Err(TrainError::Config(format!(
                    "the recipe computes in {} but a table in {table}: make the tables with the \
                     recipe's precision",
                    config.precision
                )));
            }
        }
        let schedule = config
            .schedule
            .init()
            .map_err(|e| TrainError::Config(e.to_string()))?;
        B::seed(device, config.seed);
        let model: Denoiser<B> = config
            .model
            .init(device)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let ema = config.ema.map(|_| model.valid());
        Ok(Self {
            config: config.clone(),
            ops,
            model: Some(model),
            optim: optimizer(config, ops.inner.adam),
            ema,
            forward: schedule.forward_process::<B>(device),
            schedule,
            step: 0,
            resumed_loss: None,
            last_checkpoint: None,
            device: device.clone(),
            #[cfg(test)]
            fault: None,
        })
    }

    /// Continues `config`'s run from `checkpoint` (a checkpoint folder, or a run folder for its
    /// latest): weights, Adam's state (an imported checkpoint has none: Adam starts afresh), EMA
    /// and step. Refuses a checkpoint of another model, schedule, target, image size or EMA
    /// setting.
    pub fn resume(
        config: &TrainConfig,
        ops: TrainingOps<B>,
        checkpoint: &Path,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let mut trainer = Self::new(config, ops, device)?;
        let checkpoint = resolve_checkpoint(checkpoint)?;
        let state = read_state(&checkpoint)?;
        check_compatible(&state.config, config, &checkpoint)?;
        let model = trainer.model.take().expect("a new trainer has its model");
        let record = load_record::<B, _>(&checkpoint, "model.mpk", device)?;
        trainer.model = Some(model.load_record(record));
        if checkpoint.join("optimizer.mpk").is_file() {
            let record = load_record::<B, _>(&checkpoint, "optimizer.mpk", device)?;
            trainer.optim = trainer.optim.load_record(record);
        }
        if let Some(ema) = trainer.ema.take() {
            let record = load_record::<B::InnerBackend, _>(&checkpoint, "ema.mpk", device)?;
            trainer.ema = Some(ema.load_record(record));
        }
        trainer.step = state.step;
        trainer.resumed_loss = state.loss;
        trainer.last_checkpoint = Some(checkpoint);
        Ok(trainer)
    }

    /// One optimiser step on the batch `x0` `[N, C, H, W]` (pixels in `[-1, 1]`): every random
    /// draw (flips, timesteps, noise) from `(seed, step)`, the loss against the recipe's target,
    /// its gradients, Adam, and the EMA. Returns the batch's loss, left on the device.
    pub fn step(&mut self, x0: Tensor<B, 4>) -> Tensor<B::InnerBackend, 1> {
        let config = &self.config;
        // Every random draw of a step comes from (seed, step): resuming needs no RNG state.
        B::seed(&self.device, step_seed(config.seed, self.step));
        let x0 = match config.random_flip {
            true => random_horizontal_flip(x0),
            false => x0,
        };
        let lr = self.learning_rate();
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let batch_loss = self.batch_loss(&model, x0);
        let value = batch_loss.clone().inner();
        let grads = GradientsParams::from_grads(batch_loss.backward(), &model);
        let model = self.optim.step(lr, model, grads);
        self.step += 1;
        if let (Some(ema), Some(ema_config)) = (self.ema.take(), config.ema.as_ref()) {
            self.ema = Some(update_ema(ema, &model.valid(), ema_config, self.step));
        }
        self.model = Some(model);
        value
    }

    /// The training loss of one batch: timesteps and noise drawn on the device, x0 noised in
    /// closed form, the model's output against the recipe's target.
    fn batch_loss(&self, model: &Denoiser<B>, x0: Tensor<B, 4>) -> Tensor<B, 1> {
        let forward = &self.forward;
        let t = forward.sample_timesteps(x0.dims()[0], &self.device);
        let (x_t, noise) = forward.q_sample(x0.clone(), t.clone());
        let target = forward.target(self.config.prediction, x0, noise, t.clone());
        let output = model.predict_with(&self.ops.training, x_t, t.clone());
        match self.config.loss_weighting {
            LossWeighting::Uniform => loss(self.config.loss, output, target),
            LossWeighting::MinSnr { gamma } => {
                let weights = forward.min_snr_weights(self.config.prediction, t, gamma);
                weighted_loss(self.config.loss, output, target, weights)
            }
        }
    }

    /// The learning rate of the next step: the recipe's warm-up and decay.
    pub fn learning_rate(&self) -> f64 {
        self.config
            .optimizer
            .learning_rate_at(self.step, self.config.steps)
    }

    /// Optimiser steps done, those before a resume included.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The recipe.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The weights being trained.
    pub fn model(&self) -> &Denoiser<B> {
        self.model
            .as_ref()
            .expect("the model is back after every step")
    }

    /// The weights to sample with: the EMA copy when the recipe keeps one, else the model's.
    pub fn sampling_model(&self) -> Denoiser<B::InnerBackend> {
        self.ema.clone().unwrap_or_else(|| self.model().valid())
    }

    /// The table to sample with (the inner backend's, in the recipe's precision).
    pub fn inference_ops(&self) -> Ops<B::InnerBackend> {
        self.ops.inner
    }

    /// Writes a checkpoint of the current state into `run_dir` (atomically; older ones pruned to
    /// the recipe's `keep_last` plus the best), with `loss` as its smoothed loss and `epoch` as
    /// the epoch the next step belongs to. Returns its folder.
    pub fn save(
        &mut self,
        run_dir: &Path,
        epoch: u64,
        loss: Option<f64>,
    ) -> Result<PathBuf, TrainError> {
        let name = checkpoint_name(self.step);
        let state = CheckpointState {
            step: self.step,
            epoch,
            loss,
            rng_seed: self.config.seed,
            config: self.config.clone(),
        };
        // The model, Adam's two moments and the EMA copy, f32 each.
        let copies = 3 + u64::from(self.ema.is_some());
        let weights = ddpm_unet::lazy_tensor_elements(self.model());
        let save = Save::new(run_dir, state, self.config.keep_last).needing(copies * 4 * weights);
        #[cfg(test)]
        let save = save.crashing_before_rename(self.crashes_at_save());
        let saved = save.commit(|dir| {
            let fail = |e: burn::record::RecorderError| TrainError::Checkpoint {
                path: run_dir.join(&name),
                reason: e.to_string(),
            };
            let recorder = recorder();
            let model = self.model().clone().into_record();
            Recorder::<B>::record(&recorder, model, dir.join("model.mpk")).map_err(fail)?;
            let optim = self.optim.to_record();
            Recorder::<B>::record(&recorder, optim, dir.join("optimizer.mpk")).map_err(fail)?;
            if let Some(ema) = &self.ema {
                let ema = ema.clone().into_record();
                Recorder::<B::InnerBackend>::record(&recorder, ema, dir.join("ema.mpk"))
                    .map_err(fail)?;
            }
            Ok(())
        })?;
        self.last_checkpoint = Some(saved.clone());
        Ok(saved)
    }

    #[cfg(test)]
    fn crashes_at_save(&self) -> bool {
        self.fault == Some(crate::run::Fault::CrashBeforeRename(self.step))
    }
}

/// The backend seed of step `step`.
fn step_seed(seed: u64, step: u64) -> u64 {
    seed ^ (step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The recipe's optimiser: burn's Adam with its epsilon and gradient clipping, stepping the
/// parameters as the inner backend's table says.
fn optimizer<B: AutodiffBackend>(
    config: &TrainConfig,
    ops: ddpm_ops::AdamOps<B::InnerBackend>,
) -> ThreadedAdam<Denoiser<B>, B> {
    let clipping = config
        .optimizer
        .grad_clip_norm
        .map(GradientClippingConfig::Norm);
    let adam = AdamConfig::new()
        .with_epsilon(config.optimizer.epsilon)
        .with_grad_clipping(clipping);
    ThreadedAdam::new(&adam, ops)
}

/// A checkpoint trained with another model, schedule, target or image size cannot continue.
fn check_compatible(
    saved: &TrainConfig,
    config: &TrainConfig,
    path: &Path,
) -> Result<(), TrainError> {
    let mismatch = |what, saved: String| {
        Err(TrainError::ConfigMismatch {
            path: path.to_path_buf(),
            what,
            saved,
        })
    };
    if saved.model != config.model {
        let model = serde_json::to_string(&saved.model).unwrap_or_default();
        return mismatch("model", model);
    }
    if saved.schedule != config.schedule {
        let schedule = serde_json::to_string(&saved.schedule).unwrap_or_default();
        return mismatch("noise schedule", schedule);
    }
    if saved.prediction != config.prediction {
        return mismatch("prediction target", format!("{:?}", saved.prediction));
    }
    if saved.image_size != config.image_size {
        return mismatch("image size", saved.image_size.to_string());
    }
    if saved.ema.is_some() != config.ema.is_some() {
        return mismatch("EMA setting", format!("{:?}", saved.ema));
    }
    Ok(())
}
