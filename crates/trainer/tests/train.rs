//! Real (small) training runs on the MNIST test digits the repository ships (data/mnist-t10k),
//! on burn-ndarray.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn_ndarray::NdArray;
use burn_store::ModuleSnapshot;
use ddpm_dataset::DataSource;
use ddpm_ops::{AdamOps, Ops, TrainingOps};
use ddpm_schedule::NoiseScheduleConfig;
use ddpm_trainer::{
    LossKind, LrDecay, OptimizerConfig, RunIndex, TrainConfig, TrainError, TrainOptions,
    TrainReport, Trainer,
};
use ddpm_unet::{Denoiser, DenoiserConfig, SimpleUnetConfig};

type B = Autodiff<NdArray<f32>>;

/// Trains `config` from scratch on its data with burn's operations.
fn train(config: &TrainConfig, options: &TrainOptions) -> Result<TrainReport, TrainError> {
    train_with(config, options, TrainingOps::burn())
}

fn train_with(
    config: &TrainConfig,
    options: &TrainOptions,
    ops: TrainingOps<B>,
) -> Result<TrainReport, TrainError> {
    let data = DataSource::detect(
        config
            .data
            .as_ref()
            .expect("the test recipes name their data"),
    );
    Trainer::<B>::new(config, ops, &Default::default())?.run(&data, options)
}

/// Continues the run in `options.run_dir` to `config.steps`.
fn resume(
    config: &TrainConfig,
    options: &TrainOptions,
    ops: TrainingOps<B>,
) -> Result<TrainReport, TrainError> {
    let data = DataSource::detect(
        config
            .data
            .as_ref()
            .expect("the test recipes name their data"),
    );
    let device = Default::default();
    Trainer::<B>::resume(config, ops, &options.run_dir, &device)?.run(&data, options)
}

/// burn's operations, Adam stepping the parameters concurrently.
fn concurrent() -> TrainingOps<B> {
    let mut inner = Ops::burn();
    inner.adam = AdamOps {
        step: None,
        concurrent: true,
    };
    TrainingOps {
        training: Ops::burn(),
        inner,
    }
}

/// burn-ndarray's random generator is global to the process, and the test harness runs tests on
/// parallel threads: runs that must be reproducible take turns.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive_rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// MNIST's 10,000 test digits, copied from the bundled data/mnist-t10k into a fresh folder.
fn mnist_digits() -> tempfile::TempDir {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
    let dir = tempfile::tempdir().unwrap();
    for file in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(bundled.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// The first `count` MNIST test digits as an uncompressed IDX file in a fresh folder.
fn mnist_subset(count: usize) -> tempfile::TempDir {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
    let images = ddpm_dataset::read_idx_images(&bundled.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let mut idx = Vec::new();
    for field in [0x0803u32, count as u32, 28, 28] {
        idx.extend(field.to_be_bytes());
    }
    idx.extend(&images.pixels[..count * 28 * 28]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), idx).unwrap();
    dir
}

/// A tiny recipe: 16 px gray digits, a 3-level SimpleUnet, T = 100.
fn tiny_config(data: &Path, steps: u64) -> TrainConfig {
    TrainConfig {
        schedule: NoiseScheduleConfig::new().with_num_timesteps(100),
        model: DenoiserConfig::SimpleUnet(
            SimpleUnetConfig::new()
                .with_image_channels(1)
                .with_channels(vec![8, 16, 32]),
        ),
        loss: LossKind::L2,
        optimizer: OptimizerConfig {
            learning_rate: 2e-3,
            warmup_steps: 0,
            grad_clip_norm: Some(1.0),
            epsilon: 1e-8,
            decay: LrDecay::Constant,
        },
        ema: Some(ddpm_trainer::EmaConfig {
            decay: 0.99,
            warmup: true,
        }),
        data: Some(data.to_path_buf()),
        image_size: 16,
        batch_size: 16,
        random_flip: true,
        steps,
        seed: 3,
        sample_every: 0,
        sample_count: 4,
        checkpoint_every: 0,
        keep_last: 10,
        log_every: 1,
        ..TrainConfig::preset(ddpm_trainer::Preset::CpuDemo)
    }
}

fn options(run: &Path) -> TrainOptions {
    TrainOptions {
        progress_bar: false,
        ..TrainOptions::new(run)
    }
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every tensor of a saved model, by path.
fn weights(checkpoint: &Path, file: &str, config: &TrainConfig) -> Vec<(String, Vec<f32>)> {
    let device = Default::default();
    let model: Denoiser<NdArray<f32>> = config.model.init(&device).unwrap();
    let record = NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .load(checkpoint.join(file), &device)
        .unwrap();
    let model = model.load_record(record);
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.full_path(), t.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

#[test]
fn loss_falls_on_real_mnist_digits() {
    let _rng = exclusive_rng();
    let data = mnist_digits();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(data.path(), 120);
    config.random_flip = false;
    config.sample_every = 120;
    let report = train(&config, &options(run.path())).unwrap();
    assert_eq!((report.steps, report.interrupted), (120, false));
    let losses: Vec<f64> = metrics(run.path())
        .iter()
        .map(|m| m["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 120);
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[110..].iter().sum::<f64>() / 10.0;
    println!("mean L2 loss, steps 1-10: {first:.4}; steps 111-120: {last:.4}");
    assert!(
        first > 0.5,
        "an untrained model's L2 loss on the noise is about 1, got {first}"
    );
    assert!(
        last < 0.5 * first,
        "loss must fall clearly: {first} -> {last}"
    );
    // The final checkpoint and a sample grid were written.
    let index = RunIndex::read(run.path()).unwrap();
    assert_eq!(index.latest.as_deref(), Some("step-000120"));
    let grid = image::open(run.path().join("samples/step-000120.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 * 18 + 2, 2 * 18 + 2));
}

#[test]
fn resume_is_bit_exact() {
    let _rng = exclusive_rng();
    // One run of 8 steps; another of 4, resumed for 4 more. With 80 digits an epoch is 5 batches,
    // so the runs cross an epoch boundary (new shuffle) after the resume point. The straight run
    // and the resumed half step Adam's parameters on several threads, the first half on one: the
    // result may not depend on it.
    let data = mnist_subset(80);
    let (straight, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = tiny_config(data.path(), 8);
    train_with(&config, &options(straight.path()), concurrent()).unwrap();
    let half = TrainConfig {
        steps: 4,
        ..config.clone()
    };
    train(&half, &options(split.path())).unwrap();
    let report = resume(&config, &options(split.path()), concurrent()).unwrap();
    assert_eq!(report.steps, 8);

    for file in ["model.mpk", "ema.mpk"] {
        let a = weights(&straight.path().join("step-000008"), file, &config);
        let b = weights(&split.path().join("step-000008"), file, &config);
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{file}: {name} differs after resume");
        }
    }
    // And training did change the weights.
    let initial = weights(&split.path().join("step-000004"), "model.mpk", &config);
    assert_ne!(
        initial,
        weights(&split.path().join("step-000008"), "model.mpk", &config)
    );
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let _rng = exclusive_rng();
    let data = mnist_digits();
    let run = tempfile::tempdir().unwrap();
    let config = tiny_config(data.path(), 2);
    train(&config, &options(run.path())).unwrap();
    let other = TrainConfig {
        model: DenoiserConfig::SimpleUnet(
            SimpleUnetConfig::new()
                .with_image_channels(1)
                .with_channels(vec![8, 16, 64]),
        ),
        steps: 4,
        ..config
    };
    let err = resume(&other, &options(run.path()), TrainingOps::burn()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, TrainError::ConfigMismatch { what: "model", .. }),
        "{message}"
    );
    assert!(
        message.contains("trained with a different model") && message.contains("[8,16,32]"),
        "{message}"
    );
}

#[test]
fn old_checkpoints_are_pruned_but_the_best_is_kept() {
    let _rng = exclusive_rng();
    let data = mnist_digits();
    let run = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        checkpoint_every: 1,
        keep_last: 2,
        ..tiny_config(data.path(), 6)
    };
    train(&config, &options(run.path())).unwrap();
    let index = RunIndex::read(run.path()).unwrap();
    let (best, _) = index.best.clone().unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(run.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("step-"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = vec!["step-000005".into(), "step-000006".into()];
    if !expected.contains(&best) {
        expected.insert(0, best.clone());
    }
    assert_eq!(on_disk, expected, "best {best}");
    let mut kept = index.kept.clone();
    kept.sort();
    assert_eq!(kept, expected);
}

#[test]
fn configs_round_trip_and_bad_ones_are_refused() {
    let _rng = exclusive_rng();
    let config = TrainConfig::preset(ddpm_trainer::Preset::DdpmCifar10);
    let json = serde_json::to_string_pretty(&config).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), config);
    assert!(
        json.contains("\"ddpm_unet\"") && json.contains("\"epsilon\""),
        "{json}"
    );
    let seed = TrainConfig::preset(ddpm_trainer::Preset::Seed);
    assert_eq!(
        (seed.batch_size, seed.image_size, seed.loss),
        (512, 32, LossKind::L1)
    );
    let bad = TrainConfig {
        image_size: 28,
        ..seed
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(
        err.contains("image_size 28 must be a positive multiple of 16"),
        "{err}"
    );
    let _: PathBuf = PathBuf::new();
}
