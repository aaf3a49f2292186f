//! The training loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::data::dataset::Dataset;
use burn::module::{AutodiffModule, Module};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::record::Recorder;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use ddpm_dataset::picture::{save_png, tensor_to_images, tile};
use ddpm_dataset::{
    Channels, DataSource, ImageFolderOptions, LoaderOptions, epoch_batches, random_horizontal_flip,
};
use ddpm_schedule::{DdpmConfig, ForwardProcess, NoiseSchedule};
use ddpm_unet::{Denoiser, NoisePredictor};

use crate::checkpoint::{
    CheckpointState, Save, checkpoint_name, load_record, read_state, recorder, resolve_checkpoint,
};
use crate::ema::update_ema;
use crate::loss::loss;
use crate::optimizer::ThreadedAdam;
use crate::progress::Reporter;
use crate::{TrainConfig, TrainError};

/// Failures a test can inject into a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The loss of this step (1-based) reads as NaN.
    NanLossAt(u64),
    /// The checkpoint after this step fails after its files are written, before the rename.
    CrashBeforeRename(u64),
}

/// How to run, beyond the recipe.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run's folder: checkpoints, samples and metrics.
    pub run_dir: PathBuf,
    /// Continue from this checkpoint (a checkpoint folder, or a run folder for its latest).
    pub resume: Option<PathBuf>,
    /// Set by a Ctrl-C handler: the current step finishes, a checkpoint is saved, the run returns.
    pub stop: Arc<AtomicBool>,
    /// Show a progress bar when stderr is a terminal (log lines otherwise).
    pub progress_bar: bool,
    /// Fail on an undecodable training image instead of skipping it with a warning.
    pub strict_data: bool,
    /// Step Adam's parameters concurrently on rayon's pool: for CPU backends (see
    /// [`ThreadedAdam`]); a GPU backend gains nothing, its steps only queue kernels.
    pub threaded_optimizer: bool,
    /// A failure to inject, for tests of the failure paths.
    pub fault: Option<Fault>,
}

impl TrainOptions {
    /// Options for a fresh run in `run_dir`.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            resume: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress_bar: true,
            strict_data: false,
            threaded_optimizer: false,
            fault: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Optimiser steps done in all (including those before a resume).
    pub steps: u64,
    /// Smoothed loss at the end.
    pub loss: f64,
    /// The newest checkpoint.
    pub last_checkpoint: Option<PathBuf>,
    /// Whether the run was stopped (Ctrl-C) before `config.steps`.
    pub interrupted: bool,
}

/// Trains `config`'s model on its data; returns after `config.steps` steps, or on a stop request.
pub fn train<B: AutodiffBackend>(
    config: &TrainConfig,
    options: &TrainOptions,
    device: &B::Device,
) -> Result<TrainReport, TrainError> {
    config.validate()?;
    let schedule = config
        .schedule
        .init()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let channels = if config.model.image_channels() == 1 {
        Channels::Gray
    } else {
        Channels::Rgb
    };
    let source = config
        .data
        .as_deref()
        .map_or_else(DataSource::bundled, DataSource::detect);
    let load = ImageFolderOptions {
        image_size: config.image_size,
        channels,
        strict: options.strict_data,
    };
    let (store, report) = source.load(&load)?;
    if let Some(summary) = report.and_then(|r| r.skipped_summary()) {
        tracing::warn!("{summary}");
    }
    let loader = LoaderOptions {
        batch_size: config.batch_size,
        seed: config.seed,
        drop_last: true,
        workers: 0,
    };
    let per_epoch = loader.batches_per_epoch(store.len()) as u64;
    if per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "{source} has {} images, fewer than one batch of {}",
            store.len(),
            config.batch_size
        )));
    }
    let store = Arc::new(store);
    std::fs::create_dir_all(&options.run_dir).map_err(|e| TrainError::Output {
        path: options.run_dir.clone(),
        reason: e.to_string(),
    })?;

    B::seed(device, config.seed);
    let mut model: Denoiser<B> = config
        .model
        .init(device)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let mut optim = optimizer::<B>(config, options.threaded_optimizer);
    let mut ema: Option<Denoiser<B::InnerBackend>> = config.ema.map(|_| model.valid());
    let mut step = 0;
    let mut smoothed: Option<f64> = None;
    let mut last_checkpoint = None;

    if let Some(resume) = &options.resume {
        let checkpoint = resolve_checkpoint(resume)?;
        let state = read_state(&checkpoint)?;
        check_compatible(&state.config, config, &checkpoint)?;
        model = model.load_record(load_record::<B, _>(&checkpoint, "model.mpk", device)?);
        // An imported checkpoint has no optimiser state: Adam then starts afresh.
        if checkpoint.join("optimizer.mpk").is_file() {
            optim = optim.load_record(load_record::<B, _>(&checkpoint, "optimizer.mpk", device)?);
        }
        if let Some(ema_model) = ema.take() {
            ema = Some(ema_model.load_record(load_record::<B::InnerBackend, _>(
                &checkpoint,
                "ema.mpk",
                device,
            )?));
        }
        step = state.step;
        smoothed = state.loss;
        last_checkpoint = Some(checkpoint);
    }

    let forward = schedule.forward_process::<B>(device);
    let mut reporter = Reporter::new(&options.run_dir, step, config.steps, options.progress_bar)?;
    reporter.println(&format!(
        "training on {} images from {source} ({per_epoch} batches of {} per epoch), from step {step} to {}",
        store.len(),
        config.batch_size,
        config.steps
    ));

    while step < config.steps {
        let epoch = step / per_epoch;
        let batches = epoch_batches::<B>(
            store.clone(),
            &loader,
            epoch,
            (step % per_epoch) as usize,
            device,
        );
        for x0 in batches.iter() {
            // Every random draw of a step comes from (seed, step): resuming needs no RNG state.
            B::seed(device, step_seed(config.seed, step));
            let x0 = if config.random_flip {
                random_horizontal_flip(x0)
            } else {
                x0
            };
            let n = x0.dims()[0];
            let step_loss = batch_loss(&model, &forward, config, x0);
            let mut value: f32 = step_loss.clone().into_scalar().elem();
            if options.fault == Some(Fault::NanLossAt(step + 1)) {
                value = f32::NAN;
            }
            if !value.is_finite() {
                reporter.finish();
                return Err(TrainError::NonFiniteLoss {
                    step: step + 1,
                    value,
                    last_checkpoint,
                });
            }
            let lr = learning_rate(config, step);
            let grads = GradientsParams::from_grads(step_loss.backward(), &model);
            model = optim.step(lr, model, grads);
            step += 1;
            if let (Some(ema_model), Some(ema_config)) = (ema.take(), config.ema.as_ref()) {
                ema = Some(update_ema(ema_model, &model.valid(), ema_config, step));
            }
            let smooth = smoothed.map_or(value as f64, |s| 0.98 * s + 0.02 * value as f64);
            smoothed = Some(smooth);
            reporter.step_done(step, n);

            if step.is_multiple_of(config.log_every) || step == config.steps {
                reporter.record(step, epoch, value as f64, smooth, lr)?;
            }
            if config.sample_every > 0 && step.is_multiple_of(config.sample_every) {
                let sampling_model = ema.clone().unwrap_or_else(|| model.valid());
                let path = write_samples(
                    &sampling_model,
                    &schedule,
                    config,
                    &options.run_dir,
                    step,
                    device,
                )?;
                reporter.println(&format!("step {step}: samples in {}", path.display()));
            }
            let interrupted = options.stop.load(Ordering::Relaxed);
            let due = config.checkpoint_every > 0 && step.is_multiple_of(config.checkpoint_every);
            if due || step == config.steps || interrupted {
                let state = CheckpointState {
                    step,
                    epoch: step / per_epoch,
                    loss: Some(smooth),
                    rng_seed: config.seed,
                    config: config.clone(),
                };
                let crash = options.fault == Some(Fault::CrashBeforeRename(step));
                let saved = save_checkpoint(
                    &options.run_dir,
                    state,
                    config.keep_last,
                    crash,
                    &model,
                    &optim,
                    ema.as_ref(),
                )?;
                last_checkpoint = Some(saved);
            }
            if interrupted {
                reporter.finish();
                return Ok(TrainReport {
                    steps: step,
                    loss: smooth,
                    last_checkpoint,
                    interrupted: true,
                });
            }
            if step >= config.steps {
                break;
            }
        }
    }
    reporter.finish();
    Ok(TrainReport {
        steps: step,
        loss: smoothed.unwrap_or(f64::NAN),
        last_checkpoint,
        interrupted: false,
    })
}

/// The backend seed of step `step`.
fn step_seed(seed: u64, step: u64) -> u64 {
    seed ^ (step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Linear warm-up to the configured rate.
fn learning_rate(config: &TrainConfig, step: u64) -> f64 {
    let o = &config.optimizer;
    if o.warmup_steps == 0 {
        o.learning_rate
    } else {
        o.learning_rate * ((step + 1) as f64 / o.warmup_steps as f64).min(1.0)
    }
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
        return mismatch(
            "model",
            serde_json::to_string(&saved.model).unwrap_or_default(),
        );
    }
    if saved.schedule != config.schedule {
        return mismatch(
            "noise schedule",
            serde_json::to_string(&saved.schedule).unwrap_or_default(),
        );
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

fn save_checkpoint<B: AutodiffBackend, O: Optimizer<Denoiser<B>, B>>(
    run_dir: &Path,
    state: CheckpointState,
    keep_last: usize,
    crash_before_rename: bool,
    model: &Denoiser<B>,
    optim: &O,
    ema: Option<&Denoiser<B::InnerBackend>>,
) -> Result<PathBuf, TrainError> {
    let name = checkpoint_name(state.step);
    let save = Save {
        run_dir,
        state,
        keep_last,
        crash_before_rename,
    };
    save.commit(|dir| {
        let fail = |e: burn::record::RecorderError| TrainError::Checkpoint {
            path: run_dir.join(&name),
            reason: e.to_string(),
        };
        let recorder = recorder();
        Recorder::<B>::record(
            &recorder,
            model.clone().into_record(),
            dir.join("model.mpk"),
        )
        .map_err(fail)?;
        Recorder::<B>::record(&recorder, optim.to_record(), dir.join("optimizer.mpk"))
            .map_err(fail)?;
        if let Some(ema) = ema {
            Recorder::<B::InnerBackend>::record(
                &recorder,
                ema.clone().into_record(),
                dir.join("ema.mpk"),
            )
            .map_err(fail)?;
        }
        Ok(())
    })
}

/// The recipe's optimiser: burn's Adam with its epsilon and gradient clipping, its parameters
/// stepped concurrently when `threaded` (CPU backends).
pub fn optimizer<B: AutodiffBackend>(
    config: &TrainConfig,
    threaded: bool,
) -> ThreadedAdam<Denoiser<B>, B> {
    let clipping = config
        .optimizer
        .grad_clip_norm
        .map(GradientClippingConfig::Norm);
    let adam = AdamConfig::new()
        .with_epsilon(config.optimizer.epsilon)
        .with_grad_clipping(clipping);
    ThreadedAdam::new(&adam, threaded)
}

/// The training loss of one batch `x0`: timesteps and noise drawn on the device, x0 noised in
/// closed form, the model's output against the recipe's target.
pub fn batch_loss<B: Backend>(
    model: &Denoiser<B>,
    forward: &ForwardProcess<B>,
    config: &TrainConfig,
    x0: Tensor<B, 4>,
) -> Tensor<B, 1> {
    let device = x0.device();
    let t = forward.sample_timesteps(x0.dims()[0], &device);
    let (x_t, noise) = forward.q_sample(x0.clone(), t.clone());
    let target = forward.target(config.prediction, x0, noise, t.clone());
    loss(config.loss, model.predict(x_t, t), target)
}

/// Samples a grid with the seed's ancestral sampler and writes `samples/step-N.png`. The noise is
/// the same at every call (seeded from the run's seed), so grids over a run are comparable.
fn write_samples<B: Backend>(
    model: &Denoiser<B>,
    schedule: &NoiseSchedule,
    config: &TrainConfig,
    run_dir: &Path,
    step: u64,
    device: &B::Device,
) -> Result<PathBuf, TrainError> {
    B::seed(device, config.seed ^ 0x05A3_B1E5);
    let sampler = DdpmConfig::new().init(schedule, config.prediction);
    let shape = [
        config.sample_count,
        model.image_channels(),
        config.image_size,
        config.image_size,
    ];
    let images = ddpm_schedule::sample(&sampler, |x, t| model.predict(x, t), shape, 1, device)
        .pop()
        .expect("the final state");
    let dir = run_dir.join("samples");
    let path = dir.join(format!("{}.png", checkpoint_name(step)));
    let output_error = |reason: String| TrainError::Output {
        path: path.clone(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| output_error(e.to_string()))?;
    let columns = (config.sample_count as f64).sqrt().ceil() as usize;
    let grid = tile(
        &tensor_to_images(images).map_err(|e| output_error(e.to_string()))?,
        columns,
        2,
    );
    save_png(&grid, &path).map_err(|e| output_error(e.to_string()))?;
    Ok(path)
}
