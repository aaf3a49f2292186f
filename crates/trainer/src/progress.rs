//! What a run reports while it trains: a progress bar on a terminal, log lines otherwise, and one
//! JSONL metrics record per `log_every` steps.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use ddpm_eval::Comparison;

use crate::TrainError;

/// A training record of `metrics.jsonl`, one per `log_every` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimiser steps done.
    pub step: u64,
    /// Epoch of the last step.
    pub epoch: u64,
    /// Loss of the last step.
    pub loss: f64,
    /// Exponentially smoothed loss.
    pub loss_smoothed: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Training throughput since the previous record.
    pub images_per_second: f64,
    /// Seconds since this process started training.
    pub wall_time_s: f64,
}

/// A FID measurement of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidRecord {
    /// Optimiser steps done when it was measured.
    pub step: u64,
    /// The FID against the recipe's reference statistics.
    pub fid: f64,
    /// The KID's mean, where the sample set allowed one.
    pub kid: Option<f64>,
    /// Samples it was measured on.
    pub fid_samples: usize,
}

/// One line of `metrics.jsonl`: what the trainer writes and what the curves read, one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricsLine {
    /// Training progress.
    Training(MetricsRecord),
    /// A FID measurement.
    Fid(FidRecord),
}

/// The records of a `metrics.jsonl`: training records and FID measurements, in file order;
/// lines of other shapes (a line cut short by a crash) are left out.
pub fn read_metrics(path: &Path) -> Result<(Vec<MetricsRecord>, Vec<FidRecord>), TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (mut training, mut fids) = (Vec::new(), Vec::new());
    for line in text.lines() {
        match serde_json::from_str::<MetricsLine>(line) {
            Ok(MetricsLine::Training(record)) => training.push(record),
            Ok(MetricsLine::Fid(record)) => fids.push(record),
            Err(_) => {}
        }
    }
    Ok((training, fids))
}

pub(crate) struct Reporter {
    bar: Option<ProgressBar>,
    metrics: File,
    metrics_path: PathBuf,
    started: Instant,
    window_start: Instant,
    window_images: usize,
    window_steps: u64,
    total_steps: u64,
}

impl Reporter {
    pub fn new(
        run_dir: &Path,
        first_step: u64,
        total_steps: u64,
        show_bar: bool,
    ) -> Result<Self, TrainError> {
        let metrics_path = run_dir.join("metrics.jsonl");
        let metrics = File::options()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| TrainError::Output {
                path: metrics_path.clone(),
                reason: e.to_string(),
            })?;
        let bar = (show_bar && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}")
                    .expect("valid template"),
            );
            bar.set_position(first_step);
            bar
        });
        Ok(Self {
            bar,
            metrics,
            metrics_path,
            started: Instant::now(),
            window_start: Instant::now(),
            window_images: 0,
            window_steps: 0,
            total_steps,
        })
    }

    pub fn step_done(&mut self, step: u64, images: usize) {
        self.window_images += images;
        self.window_steps += 1;
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    /// Records metrics for the window since the last call and shows them.
    pub fn record(
        &mut self,
        step: u64,
        epoch: u64,
        loss: f64,
        loss_smoothed: f64,
        lr: f64,
    ) -> Result<(), TrainError> {
        let elapsed = self
            .window_start
            .elapsed()
            .max(Duration::from_micros(1))
            .as_secs_f64();
        let images_per_second = self.window_images as f64 / elapsed;
        let record = MetricsRecord {
            step,
            epoch,
            loss,
            loss_smoothed,
            lr,
            images_per_second,
            wall_time_s: self.started.elapsed().as_secs_f64(),
        };
        self.write(&MetricsLine::Training(record))?;
        let summary = format!(
            "epoch {epoch} loss {loss_smoothed:.4} lr {lr:.1e} {images_per_second:.1} img/s"
        );
        match &self.bar {
            Some(bar) => bar.set_message(summary),
            None => {
                let seconds_per_step = elapsed / self.window_steps.max(1) as f64;
                let remaining = self.total_steps.saturating_sub(step) as f64;
                let eta = format_duration(remaining * seconds_per_step);
                tracing::info!("step {step}/{} {summary} eta {eta}", self.total_steps);
            }
        }
        self.window_start = Instant::now();
        self.window_images = 0;
        self.window_steps = 0;
        Ok(())
    }

    /// Appends a FID measurement to the metrics.
    pub fn record_fid(&mut self, step: u64, comparison: &Comparison) -> Result<(), TrainError> {
        self.write(&MetricsLine::Fid(FidRecord {
            step,
            fid: comparison.fid,
            kid: comparison.kid.map(|kid| kid.mean),
            fid_samples: comparison.count,
        }))?;
        self.println(&format!("step {step}: {comparison}"));
        Ok(())
    }

    fn write(&mut self, line: &MetricsLine) -> Result<(), TrainError> {
        let line = serde_json::to_string(line).expect("serialisable");
        writeln!(self.metrics, "{line}").map_err(|e| TrainError::Output {
            path: self.metrics_path.clone(),
            reason: e.to_string(),
        })
    }

    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => tracing::info!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn format_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A progress bar over images ("`{bar} 120/1000 images {what}, eta …`") for long sampling or
/// feature extraction; indicatif draws it on a terminal only.
pub fn image_progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:30}} {{pos}}/{{len}} images {what}, eta {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}
