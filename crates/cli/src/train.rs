//! `ddpm train`: runs the trainer.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use burn::backend::Autodiff;
use clap::Args;
use ddpm_trainer::{Preset, TrainConfig, TrainOptions, resolve_checkpoint, train};

use crate::backend::BackendArgs;
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
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str::<TrainConfig>(&text)
                        .with_context(|| format!("{} is not a training recipe", path.display()))?
                }
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
    if let Some(data) = &args.data {
        config.data = Some(data.clone());
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }

    let selected = args.backend.select()?;
    let options = TrainOptions {
        resume: args.resume.clone(),
        strict_data: args.strict,
        threaded_optimizer: selected.on_cpu(),
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
        train::<Autodiff<B>>(&config, &options, &device)
    })?;
    let checkpoint = report
        .last_checkpoint
        .as_ref()
        .map_or_else(|| "none".into(), |p| p.display().to_string());
    if report.interrupted {
        println!(
            "interrupted at step {} (loss {:.4}); checkpoint {checkpoint}\nresume with: ddpm train --resume {}",
            report.steps,
            report.loss,
            run_dir.display()
        );
    } else {
        println!(
            "trained {} steps (loss {:.4}); checkpoint {checkpoint}; samples in {}",
            report.steps,
            report.loss,
            run_dir.join("samples").display()
        );
    }
    Ok(())
}
