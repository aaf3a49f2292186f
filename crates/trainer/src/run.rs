//! The training loop: a dataset's epochs through [`Trainer::step`], with logs, metrics, sample
//! grids and checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::data::dataset::Dataset;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use ddpm_dataset::picture::save_png;
use ddpm_dataset::{
    Channels, DataSource, ImageFolderOptions, ImageStore, LoaderOptions, epoch_batches,
};
use ddpm_eval::{Comparison, FeatureStats, FidInception};
use ddpm_schedule::{DdimConfig, DdpmConfig, Sampler};
use ddpm_unet::Denoiser;

use crate::checkpoint::{checkpoint_name, remove_staging_leftovers};
use crate::pipeline::{Pipeline, grid};
use crate::plot::training_curves;
use crate::progress::Reporter;
use crate::progress::read_metrics;
use crate::sample_stats;
use crate::{TrainError, Trainer};

/// How to run, beyond the recipe.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run's folder: checkpoints, samples and metrics.
    pub run_dir: PathBuf,
    /// Set by a Ctrl-C handler: the current step finishes, a checkpoint is saved, the run returns.
    pub stop: Arc<AtomicBool>,
    /// Show a progress bar when stderr is a terminal (log lines otherwise).
    pub progress_bar: bool,
    /// Fail on an undecodable training image instead of skipping it with a warning.
    pub strict_data: bool,
}

impl TrainOptions {
    /// Options for a run in `run_dir`.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            stop: Arc::new(AtomicBool::new(false)),
            progress_bar: true,
            strict_data: false,
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
    /// The run's folder.
    pub run_dir: PathBuf,
    /// The last sample grid and the loss curve, in the run's folder.
    pub pictures: Vec<PathBuf>,
}

impl std::fmt::Display for TrainReport {
    /// What a user reads at the end: steps, loss, the checkpoint, and where to go on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checkpoint = self
            .last_checkpoint
            .as_ref()
            .map_or_else(|| "none".into(), |p| p.display().to_string());
        let (steps, loss, run) = (self.steps, self.loss, self.run_dir.display());
        match self.interrupted {
            true => write!(
                f,
                "interrupted at step {steps} (loss {loss:.4}); checkpoint {checkpoint}\nresume with: ddpm train --resume {run}"
            ),
            false => write!(
                f,
                "trained {steps} steps (loss {loss:.4}); checkpoint {checkpoint}; samples in {}",
                self.run_dir.join("samples").display()
            ),
        }?;
        for picture in &self.pictures {
            write!(f, "\n{}", picture.display())?;
        }
        Ok(())
    }
}

/// Failures the crate's tests inject into a run.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The loss of this step (1-based) reads as NaN.
    NanLossAt(u64),
    /// The checkpoint after this step stops after its files are written, before the rename, as
    /// a killed process would.
    CrashBeforeRename(u64),
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Trains on `data` until the recipe's step count, or until `options.stop` is set. Removes
    /// staging folders an earlier crash left in the run folder, logs every `log_every` steps
    /// (and appends to `metrics.jsonl`), writes sample grids and checkpoints as the recipe says
    /// and a last checkpoint at the end or on a stop.
    ///
    /// The losses stay on the device between logs: they are read (and checked for NaN) every
    /// `log_every` steps and before each sample grid and checkpoint, so a NaN stops the run
    /// within `log_every` steps and is never saved.
    pub fn run(
        mut self,
        data: &DataSource,
        options: &TrainOptions,
    ) -> Result<TrainReport, TrainError> {
        let (store, loader) = self.load(data, options)?;
        let per_epoch = loader.batches_per_epoch(store.len()) as u64;
        let run_dir = &options.run_dir;
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::Output {
            path: run_dir.clone(),
            reason: e.to_string(),
        })?;
        let steps = self.config.steps;
        let mut reporter = Reporter::new(run_dir, self.steps_done(), steps, options.progress_bar)?;
        for leftover in remove_staging_leftovers(run_dir)? {
            reporter.println(&format!(
                "removed {leftover}, a checkpoint an earlier run left half written"
            ));
        }
        reporter.println(&format!(
            "training on {} images from {data} ({per_epoch} batches of {} per epoch), from step {} to {steps}",
            store.len(),
            self.config.batch_size,
            self.steps_done(),
        ));
        let fid = self.fid_reference()?;
        let mut losses = LossLog::new(self.resumed_loss);
        let store = Arc::new(store);
        while self.steps_done() < steps {
            let epoch = self.steps_done() / per_epoch;
            let skip = (self.steps_done() % per_epoch) as usize;
            let batches = epoch_batches::<B>(store.clone(), &loader, epoch, skip, &self.device);
            for x0 in batches.iter() {
                let images = x0.dims()[0];
                let lr = self.learning_rate();
                let loss = self.step(x0);
                let step = self.steps_done();
                losses.push(step, loss, lr);
                reporter.step_done(step, images);

                let config = &self.config;
                let logs = step.is_multiple_of(config.log_every) || step == steps;
                let samples = config.sample_every > 0 && step.is_multiple_of(config.sample_every);
                let interrupted = options.stop.load(Ordering::Relaxed);
                let saves = interrupted
                    || step == steps
                    || (config.checkpoint_every > 0
                        && step.is_multiple_of(config.checkpoint_every));
                if (logs || samples || saves)
                    && let Err(error) = self.read_losses(&mut losses)
                {
                    reporter.finish();
                    return Err(error);
                }
                if logs {
                    let last = losses.last.expect("read above");
                    reporter.record(step, epoch, last.value, losses.smoothed(), last.lr)?;
                }
                if samples {
                    let path = self.write_samples(run_dir)?;
                    reporter.println(&format!("step {step}: samples in {}", path.display()));
                }
                if let Some((every, inception, reference)) = &fid
                    && step.is_multiple_of(*every)
                {
                    reporter.record_fid(step, &self.measure_fid(inception, reference)?)?;
                }
                if saves {
                    self.save(run_dir, step / per_epoch, Some(losses.smoothed()))?;
                }
                if interrupted || step >= steps {
                    break;
                }
            }
            if options.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        reporter.finish();
        let pictures = self.write_pictures(run_dir)?;
        Ok(TrainReport {
            steps: self.steps_done(),
            loss: losses.smoothed,
            last_checkpoint: self.last_checkpoint.clone(),
            interrupted: self.steps_done() < steps,
            run_dir: run_dir.clone(),
            pictures,
        })
    }

    /// The training images, decoded once, and how they are batched.
    fn load(
        &self,
        data: &DataSource,
        options: &TrainOptions,
    ) -> Result<(ImageStore, LoaderOptions), TrainError> {
        let config = &self.config;
        let channels = match config.model.image_channels() {
            1 => Channels::Gray,
            _ => Channels::Rgb,
        };
        let load = ImageFolderOptions {
            image_size: config.image_size,
            channels,
            strict: options.strict_data,
        };
        let (store, report) = data.load(&load)?;
        if let Some(report) = report {
            let summaries = [
                report.skipped_summary(),
                report.upscaled_summary(config.image_size),
            ];
            for summary in summaries.into_iter().flatten() {
                tracing::warn!("{summary}");
            }
        }
        let loader = LoaderOptions {
            batch_size: config.batch_size,
            seed: config.seed,
            drop_last: true,
            workers: 0,
        };
        if loader.batches_per_epoch(store.len()) == 0 {
            return Err(TrainError::Config(format!(
                "{data} has {} images, fewer than one batch of {}",
                store.len(),
                config.batch_size
            )));
        }
        Ok((store, loader))
    }

    /// Reads the losses still on the device; a NaN or infinite one stops the run.
    fn read_losses(&self, losses: &mut LossLog<B::InnerBackend>) -> Result<(), TrainError> {
        #[cfg(test)]
        let nan_at = match self.fault {
            Some(Fault::NanLossAt(step)) => Some(step),
            _ => None,
        };
        #[cfg(not(test))]
        let nan_at = None;
        match losses.read(nan_at) {
            Ok(()) => Ok(()),
            Err((step, value)) => Err(TrainError::NonFiniteLoss {
                step,
                value,
                last_checkpoint: self.last_checkpoint.clone(),
            }),
        }
    }

    /// The recipe's FID schedule, network and reference statistics, loaded once, if it asks for
    /// FID.
    #[allow(clippy::type_complexity)]
    fn fid_reference(
        &self,
    ) -> Result<Option<(u64, FidInception<B::InnerBackend>, FeatureStats)>, TrainError> {
        let Some(fid) = &self.config.fid else {
            return Ok(None);
        };
        // The features in f32 whatever the recipe's precision: FID compares to f32 statistics.
        let inception = FidInception::load(&fid.inception, &self.device)?.with_ops(self.ops.inner);
        Ok(Some((
            fid.every,
            inception,
            FeatureStats::load(&fid.reference)?,
        )))
    }

    /// FID and KID of the recipe's number of samples (DDIM, the EMA weights when kept) against
    /// `reference`; the same noise at every measurement.
    fn measure_fid(
        &self,
        inception: &FidInception<B::InnerBackend>,
        reference: &FeatureStats,
    ) -> Result<Comparison, TrainError> {
        let (config, fid) = (&self.config, self.config.fid.as_ref().expect("asked for"));
        let sampler = DdimConfig::new()
            .with_num_inference_steps(fid.ddim_steps.min(self.schedule.num_timesteps()))
            .with_use_clipped_model_output(true)
            .init(&self.schedule, config.prediction)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let seed = config.seed ^ 0x0F1D;
        B::InnerBackend::seed(&self.device, seed);
        let sizes = (fid.samples, config.batch_size.max(64));
        let stats = self.with_pipeline(&sampler, |pipeline| {
            sample_stats(pipeline, inception, sizes, seed, &self.device, |_| {})
        });
        Ok(Comparison::of(&stats, reference, seed)?)
    }

    /// The final sample grid (`samples.png`: the last step's grid, sampled if the recipe did not
    /// just write it) and the loss curve with the FID below it when measured (`loss.png`, from
    /// `metrics.jsonl`), in the run's folder.
    fn write_pictures(&self, run_dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
        let grid = run_dir.join("samples.png");
        let last = run_dir
            .join("samples")
            .join(format!("{}.png", checkpoint_name(self.steps_done())));
        let last = match last.is_file() {
            true => last,
            false => self.write_samples(run_dir)?,
        };
        std::fs::copy(&last, &grid).map_err(|e| output_error(&grid, e))?;
        let curve = run_dir.join("loss.png");
        let (losses, fids) = read_metrics(&run_dir.join("metrics.jsonl"))?;
        let picture = training_curves(&losses, &fids).map_err(|e| output_error(&curve, e))?;
        save_png(&picture, &curve).map_err(|e| output_error(&curve, e))?;
        Ok(vec![grid, curve])
    }

    /// Samples a grid with the seed's ancestral sampler and writes `samples/step-N.png`. The noise
    /// is the same at every call (seeded from the run's seed), so grids over a run compare.
    fn write_samples(&self, run_dir: &Path) -> Result<PathBuf, TrainError> {
        let config = &self.config;
        B::InnerBackend::seed(&self.device, config.seed ^ 0x05A3_B1E5);
        let sampler = DdpmConfig::new().init(&self.schedule, config.prediction);
        let dir = run_dir.join("samples");
        let path = dir.join(format!("{}.png", checkpoint_name(self.steps_done())));
        std::fs::create_dir_all(&dir).map_err(|e| output_error(&path, e))?;
        let images = self.with_pipeline(&sampler, |pipeline| {
            pipeline.images(config.sample_count, &self.device)
        })?;
        save_png(&grid(&images), &path).map_err(|e| output_error(&path, e))?;
        Ok(path)
    }

    /// Runs `body` with the pipeline of the sampling weights (EMA when kept) and the inference
    /// table, reversing with `sampler`.
    fn with_pipeline<R>(
        &self,
        sampler: &dyn Sampler<B::InnerBackend>,
        body: impl FnOnce(&Pipeline<'_, B::InnerBackend, Denoiser<B::InnerBackend>>) -> R,
    ) -> R {
        let model = self.sampling_model();
        let ops = self.inference_ops();
        body(&Pipeline {
            model: &model,
            ops: &ops,
            sampler,
            image_size: self.config.image_size,
        })
    }
}

fn output_error(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::Output {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The last step's loss as read, and its learning rate.
#[derive(Debug, Clone, Copy)]
struct Read {
    value: f64,
    lr: f64,
}

/// The training losses: those still on the device, and the smoothed loss of those read.
struct LossLog<B: Backend> {
    pending: Vec<(u64, Tensor<B, 1>, f64)>,
    smoothed: f64,
    last: Option<Read>,
}

impl<B: Backend> LossLog<B> {
    /// A log continuing from `smoothed` (a resumed run's), or starting at the first loss read.
    fn new(smoothed: Option<f64>) -> Self {
        Self {
            pending: Vec::new(),
            smoothed: smoothed.unwrap_or(f64::NAN),
            last: None,
        }
    }

    fn push(&mut self, step: u64, loss: Tensor<B, 1>, lr: f64) {
        self.pending.push((step, loss, lr));
    }

    /// Reads the pending losses in one transfer and folds them into the smoothed loss, in step
    /// order; stops at the first that is not finite (or at step `nan_at`, for the tests) with
    /// that step and value.
    fn read(&mut self, nan_at: Option<u64>) -> Result<(), (u64, f32)> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let tensors = pending.iter().map(|(_, loss, _)| loss.clone()).collect();
        let values = Tensor::cat(tensors, 0).into_data().convert::<f32>();
        let values = values.as_slice::<f32>().expect("converted to f32");
        for ((step, _, lr), &value) in pending.iter().zip(values) {
            let value = if nan_at == Some(*step) {
                f32::NAN
            } else {
                value
            };
            if !value.is_finite() {
                return Err((*step, value));
            }
            let value = value as f64;
            self.smoothed = match self.smoothed.is_nan() {
                true => value,
                false => 0.98 * self.smoothed + 0.02 * value,
            };
            self.last = Some(Read { value, lr: *lr });
        }
        Ok(())
    }

    fn smoothed(&self) -> f64 {
        self.smoothed
    }
}

#[cfg(test)]
mod tests;
