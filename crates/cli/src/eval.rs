//! `ddpm eval` and `ddpm stats`: FID and KID of samples or images against a reference.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use ddpm_dataset::DataSource;
use ddpm_eval::{Comparison, FeatureStats, FidInception};
use ddpm_ops::{Ops, Precision};
use ddpm_trainer::{
    SampledFrom, checkpoint_stats, image_progress, read_state, resolve_checkpoint, source_stats,
};
use serde::Serialize;

use crate::backend::{BackendArgs, Tables};
use crate::sample::SamplerArgs;
use crate::with_backend;

/// Arguments of `ddpm eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ddpm eval --checkpoint checkpoint/cpu-demo --ref data/mnist-t10k -n 10000\n  \
ddpm eval --checkpoint checkpoint/cifar --ref cifar-train.safetensors --sampler ddim --steps 50\n  \
ddpm eval --images samples/ --ref data/cifar10/test\n\n\
Prints a readable line and one JSON result. FID as pytorch-fid computes it; KID (unbiased MMD, \
cubic kernel) over 100 subsets of up to 1,000, as torch-fidelity."
)]
pub struct EvalArgs {
    /// Sample from this checkpoint (or a run folder's latest).
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    checkpoint: Option<PathBuf>,
    /// Evaluate the images in this folder instead (read recursively).
    #[arg(long)]
    images: Option<PathBuf>,
    /// The reference: a folder of images (or of MNIST IDX files), or `ddpm stats`' output.
    #[arg(long = "ref")]
    reference: PathBuf,
    /// Samples to draw from the checkpoint.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    count: usize,
    /// Images sampled at once (the network takes 50 at a time).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Seed of the samples' noise and of KID's subsets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sample with the raw weights even when EMA weights exist.
    #[arg(long)]
    no_ema: bool,
    /// pytorch-fid's FID Inception weights (`cargo xtask fetch-data inception`).
    #[arg(long, default_value = DEFAULT_WEIGHTS)]
    inception: PathBuf,
    /// Also write the JSON result to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Arguments of `ddpm stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A folder of images (read recursively), or of MNIST IDX files.
    dir: PathBuf,
    /// The statistics file to write (safetensors), for `ddpm eval --ref`.
    #[arg(long)]
    out: PathBuf,
    /// pytorch-fid's FID Inception weights (`cargo xtask fetch-data inception`).
    #[arg(long, default_value = DEFAULT_WEIGHTS)]
    inception: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Where `cargo xtask fetch-data inception` puts the weights.
const DEFAULT_WEIGHTS: &str = "data/inception/pt_inception-2015-12-05-6726825d.pth";

/// The JSON result of `ddpm eval`: the comparison, and what was compared.
#[derive(Debug, Serialize)]
struct EvalResult {
    #[serde(flatten)]
    comparison: Comparison,
    reference: PathBuf,
    images: Option<PathBuf>,
    #[serde(flatten)]
    samples: Option<SampledFrom>,
    wall_time_s: f64,
}

/// Runs `ddpm eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    args.sampler.check()?;
    if args.count < 2 {
        bail!("-n must be at least 2: FID needs a covariance");
    }
    let selected = args.backend.select()?;
    let kernels = args.backend.kernels(selected);
    with_backend!(selected, B, device => evaluate::<B>(args, &B::inference(&kernels, Precision::F32)?, &device))
}

/// Runs `ddpm stats`.
pub fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let selected = args.backend.select()?;
    let kernels = args.backend.kernels(selected);
    with_backend!(selected, B, device => {
        let inception = FidInception::<B>::load(&args.inception, &device)?
            .with_ops(B::inference(&kernels, Precision::F32)?);
        let stats = folder_stats(&inception, &args.dir, 0, &device)?;
        stats.save(&args.out)?;
        println!("wrote the statistics of {} images to {}", stats.count, args.out.display());
        anyhow::Ok(())
    })
}

fn evaluate<B: Tables>(args: &EvalArgs, ops: &Ops<B>, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let inception = FidInception::<B>::load(&args.inception, device)?.with_ops(*ops);
    let reference = match args.reference.is_dir() {
        true => folder_stats(&inception, &args.reference, args.seed, device)?,
        false => FeatureStats::load(&args.reference)?,
    };
    let (ours, samples) = match (&args.images, &args.checkpoint) {
        (Some(dir), _) => (folder_stats(&inception, dir, args.seed, device)?, None),
        (None, Some(checkpoint)) => {
            let timesteps = read_state(&resolve_checkpoint(checkpoint)?)?
                .config
                .schedule
                .num_timesteps;
            let bar = image_progress(args.count as u64, "sampled and measured");
            let (stats, from) = checkpoint_stats(
                checkpoint,
                !args.no_ema,
                &args.sampler.config(timesteps),
                ops,
                &inception,
                (args.count, args.batch),
                args.seed,
                device,
                |done| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            (stats, Some(from))
        }
        (None, None) => unreachable!("clap asks for --checkpoint or --images"),
    };
    let comparison = Comparison::of(&ours, &reference, args.seed)?;
    comparison
        .warnings()
        .iter()
        .for_each(|w| eprintln!("warning: {w}"));
    let wall_time_s = started.elapsed().as_secs_f64();
    eprintln!("{comparison} in {wall_time_s:.0} s");
    let result = EvalResult {
        comparison,
        reference: args.reference.clone(),
        images: args.images.clone(),
        samples,
        wall_time_s,
    };
    let json = serde_json::to_string(&result)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("cannot write {}", out.display()))?;
    }
    println!("{json}");
    Ok(())
}

/// The statistics of the images in `dir` (or of its MNIST IDX digits), with a progress bar.
fn folder_stats<B: Tables>(
    inception: &FidInception<B>,
    dir: &Path,
    seed: u64,
    device: &B::Device,
) -> anyhow::Result<FeatureStats> {
    let bar = image_progress(0, &format!("measured in {}", dir.display()));
    let show = |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let stats = source_stats(inception, &DataSource::detect(dir), seed, device, show)?;
    bar.finish_and_clear();
    Ok(stats)
}
