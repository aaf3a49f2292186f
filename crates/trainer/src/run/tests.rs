//! The failure paths of a run, with failures injected: a crash between a checkpoint's write and
//! its rename, and a loss that turns NaN. On real MNIST digits, on burn-ndarray.

use std::path::Path;

use burn::backend::Autodiff;
use burn_ndarray::NdArray;
use ddpm_dataset::{DataSource, MnistSplit};
use ddpm_ops::TrainingOps;
use ddpm_schedule::NoiseScheduleConfig;
use ddpm_unet::{DenoiserConfig, SimpleUnetConfig};

use super::*;
use crate::{LossKind, Preset, RunIndex, TrainConfig};

type B = Autodiff<NdArray<f32>>;

/// burn-ndarray's random generator is global to the process: runs take turns.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// MNIST's 10,000 test digits from the shared datasets.
fn digits() -> DataSource {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/mnist");
    DataSource::Mnist {
        dir,
        split: MnistSplit::Test,
    }
}

/// A tiny recipe: 8 px digits, a two-level SimpleUnet, T = 50, a checkpoint every 2 steps.
fn tiny(steps: u64) -> TrainConfig {
    TrainConfig {
        schedule: NoiseScheduleConfig::new().with_num_timesteps(50),
        model: DenoiserConfig::SimpleUnet(
            SimpleUnetConfig::new()
                .with_image_channels(1)
                .with_channels(vec![4, 8]),
        ),
        loss: LossKind::L2,
        data: None,
        image_size: 8,
        batch_size: 8,
        steps,
        sample_every: 0,
        checkpoint_every: 2,
        keep_last: 10,
        log_every: 1,
        ..TrainConfig::preset(Preset::CpuDemo)
    }
}

fn options(run: &Path) -> TrainOptions {
    TrainOptions {
        progress_bar: false,
        ..TrainOptions::new(run)
    }
}

fn run_with(
    config: &TrainConfig,
    fault: Option<Fault>,
    run: &Path,
) -> Result<TrainReport, TrainError> {
    let mut trainer = Trainer::<B>::new(config, TrainingOps::burn(), &Default::default())?;
    trainer.fault = fault;
    trainer.run(&digits(), &options(run))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A crash between a checkpoint's write and its rename (the process killed) leaves the last
/// good checkpoint as the run's latest and a staging folder beside it; resuming removes the
/// staging folder and continues from the good checkpoint.
#[test]
fn a_crash_before_the_rename_leaves_the_last_good_checkpoint_and_resume_cleans_up() {
    let _turn = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = tempfile::tempdir().unwrap();
    let config = tiny(6);
    let err = run_with(&config, Some(Fault::CrashBeforeRename(4)), run.path()).unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }), "{err}");
    let after_crash = entries(run.path());
    assert_eq!(after_crash.len(), 4, "{after_crash:?}");
    assert_eq!(
        after_crash[1..],
        ["metrics.jsonl", "run.json", "step-000002"]
    );
    assert!(
        after_crash[0].starts_with(".step-000004."),
        "{after_crash:?}"
    );
    assert!(run.path().join(&after_crash[0]).join("model.mpk").is_file());
    assert_eq!(
        RunIndex::read(run.path()).unwrap().latest.as_deref(),
        Some("step-000002")
    );

    let trainer = Trainer::<B>::resume(
        &config,
        TrainingOps::burn(),
        run.path(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(trainer.steps_done(), 2);
    let report = trainer.run(&digits(), &options(run.path())).unwrap();
    assert_eq!((report.steps, report.interrupted), (6, false));
    assert!(
        !entries(run.path()).iter().any(|name| name.starts_with('.')),
        "{:?}",
        entries(run.path())
    );
    assert!(run.path().join("step-000006").is_dir());
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let _turn = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = tempfile::tempdir().unwrap();
    let err = run_with(&tiny(10), Some(Fault::NanLossAt(5)), run.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, TrainError::NonFiniteLoss { step: 5, .. }),
        "{message}"
    );
    assert!(
        message.contains("at step 5") && message.contains("step-000004"),
        "{message}"
    );
    let index = RunIndex::read(run.path()).unwrap();
    assert_eq!(index.latest.as_deref(), Some("step-000004"));
    assert!(!run.path().join("step-000006").exists());
}

/// With losses read only every `log_every` steps, a NaN is still caught before the next
/// checkpoint, at its own step.
#[test]
fn a_nan_between_logs_is_caught_at_its_step_before_any_checkpoint() {
    let _turn = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        log_every: 5,
        checkpoint_every: 4,
        ..tiny(10)
    };
    let err = run_with(&config, Some(Fault::NanLossAt(3)), run.path()).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteLoss { step: 3, .. }),
        "{err}"
    );
    assert!(!run.path().join("step-000004").exists());
}
