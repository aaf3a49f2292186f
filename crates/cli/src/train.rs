//! `ddpm train`: runs the trainer.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use burn::backend::Autodiff;
use clap::Args;
use ddpm_dataset::DataSource;
use ddpm_ops::Precision;
use ddpm_trainer::{Preset, TrainConfig, TrainOptions, Trainer, resolve_checkpoint};

use crate::backend::{BackendArgs, Tables};
use crate::with_backend;

/// Arguments of `ddpm train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ddpm train                                  # cpu-demo preset on the bundled MNIST digits\n  \
ddpm train --preset seed --data data/train   # the seed's recipe on your images\n  \
ddpm train --resume checkpoint/cpu-demo      # continue a run exactly where it stopped\n  \
ddpm train --config my-recipe.json --run my-run"
)]
pub struct TrainArgs {
    /// Recipe: seed, ddpm-cifar10 or cpu-demo.
    #[arg(long, default_value = "cpu-demo", conflicts_with = "config")]
    preset: Preset,
    /// A JSON recipe (see the `config` in any checkpoint's state.json), instead of a preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Training images: a folder of images, or of MNIST IDX files (default: the recipe's).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Continue from a checkpoint folder, or a run folder's latest checkpoint. Its saved recipe
    /// is used; --steps may extend it.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop at the first training image that cannot be decoded (default: skip such files with
    /// one summary warning).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    backend: BackendArgs,
    /// Seed of every random choice (default: the recipe's).
    #[arg(long)]
    seed: Option<u64>,
    /// Total optimisation steps (default: the recipe's).
    #[arg(long)]
    steps: Option<u64>,
    /// Images per step (default: the recipe's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// f32, or bf16: convolutions and attention in bf16, the rest in f32 (default: the recipe's).
    #[arg(long)]
    precision: Option<Precision>,
    /// Run name: checkpoints, samples and metrics go to <checkpoint-dir>/<run>/ (default: the
    /// preset's name).
    #[arg(long)]
    run: Option<String>,
    /// Folder of the runs.
    #[arg(long, default_value = "checkpoint")]
    checkpoint_dir: PathBuf,
}

/// Trains with the chosen backend; prints where the results are.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (mut config, run_dir) = match &args.resume {
        Some(path) => {
            let checkpoint = resolve_checkpoint(path)?;
            let state = ddpm_trainer::read_state(&checkpoint)?;
            let run_dir = checkpoint.parent().map(PathBuf::from).unwrap_or_default();
            (state.config, run_dir)
        }
        None => {
            let config = match &args.config {
                Some(path) => TrainConfig::load(path)?,
                None => TrainConfig::preset(args.preset),
            };
            let name = args.run.clone().unwrap_or_else(|| args.preset.to_string());
            let run_dir = args.checkpoint_dir.join(name);
            if run_dir.join("run.json").exists() {
                bail!(
                    "{} already holds a run; continue it with --resume {} or start another with --run NAME",
                    run_dir.display(),
                    run_dir.display()
                );
            }
            (config, run_dir)
        }
    };
    config.data = args.data.clone().or(config.data);
    config.seed = args.seed.unwrap_or(config.seed);
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.precision = args.precision.unwrap_or(config.precision);

    let data = match &config.data {
        Some(path) if !path.exists() => bail!("{}", missing_data(path)),
        Some(path) => DataSource::detect(path),
        None => DataSource::detect(&bundled_digits()?),
    };
    let selected = args.backend.select()?;
    let kernels = args.backend.kernels(selected);
    let options = TrainOptions {
        strict_data: args.strict,
        ..TrainOptions::new(&run_dir)
    };
    let stop = options.stop.clone();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (press Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")?;

    let report = with_backend!(selected, B, device => {
        let ops = B::training(&kernels, config.precision)?;
        let trainer = match &args.resume {
            Some(checkpoint) => Trainer::<Autodiff<B>>::resume(&config, ops, checkpoint, &device)?,
            None => Trainer::<Autodiff<B>>::new(&config, ops, &device)?,
        };
        trainer.run(&data, &options)
    })?;
    println!("{report}");
    Ok(())
}

/// What to say of a training-data folder that is not there: the fetch command where one
/// makes it.
fn missing_data(path: &Path) -> String {
    let fetches = [("data/cifar10", "cifar10"), ("data/mnist", "mnist")];
    let fetch = fetches
        .iter()
        .find(|(folder, _)| path.starts_with(folder))
        .map(|(_, name)| format!("; `cargo xtask fetch-data {name}` downloads it"));
    format!(
        "the training data {} does not exist{}",
        path.display(),
        fetch.unwrap_or_else(|| "; pass --data FOLDER".into())
    )
}

/// The MNIST test digits the repository ships in `data/mnist-t10k/`: below the working folder
/// (a run from the checkout), else where this binary's source checkout had them.
fn bundled_digits() -> anyhow::Result<PathBuf> {
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
    let candidates = [PathBuf::from("data/mnist-t10k"), in_checkout];
    candidates
        .into_iter()
        .find(|dir| dir.join("t10k-images-idx3-ubyte.gz").is_file())
        .context(
            "the recipe names no training data and the bundled digits (data/mnist-t10k/) are not \
             here; pass --data FOLDER",
        )
}
