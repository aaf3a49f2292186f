//! `ddpm`: train, sample and inspect DDPM image generators. Thin glue over the library crates.

mod allocator;
mod backend;
mod bench;
mod diffuse;
mod eval;
mod sample;
mod train;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Denoising diffusion (DDPM) image generators on Burn.
#[derive(Debug, Parser)]
#[command(name = "ddpm", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a noise predictor (default: the cpu-demo recipe on the bundled MNIST digits).
    Train(train::TrainArgs),
    /// Sample pictures from a checkpoint (DDPM or DDIM), or the reverse-process strip.
    Sample(sample::SampleArgs),
    /// Show what a checkpoint holds: recipe, step, parameters, EMA.
    Info(weights::InfoArgs),
    /// Import the seed's PyTorch checkpoint (`<epoch>unet-best.pth`) as a checkpoint.
    Import(weights::ImportArgs),
    /// Export a checkpoint's weights for PyTorch (safetensors).
    Export(weights::ExportArgs),
    /// FID and KID of a checkpoint's samples (or of a folder of images) against a reference.
    Eval(eval::EvalArgs),
    /// Cache the FID statistics of a folder of images, for `ddpm eval --ref`.
    Stats(eval::StatsArgs),
    /// Picture the forward process: one image, noised further and further, as a PNG strip.
    Diffuse(diffuse::DiffuseArgs),
    /// Time one training or sampling step (one JSON line; `cargo xtask bench` compares PyTorch).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // cubecl logs a warning for a failed device task; the CUDA probe reports it itself.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cubecl_common::device::handle::channel=error".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let command = || match &cli.command {
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Info(args) => weights::info(args),
        Command::Import(args) => weights::import(args),
        Command::Export(args) => weights::export(args),
        Command::Eval(args) => eval::run(args),
        Command::Stats(args) => eval::stats(args),
        Command::Diffuse(args) => diffuse::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match on_worker_thread(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` on a thread of rayon's global pool (the CPU backends' and our kernels'), not
/// beside it: each parallel operation a worker starts is a push onto its own queue, where one
/// started from outside the pool is injected and waited for through the kernel (futex sleep and
/// wake-up, a large share of a small model's step on flex). The pool has
/// `RAYON_NUM_THREADS` threads, else one per core, with the main thread's 8 MiB stacks.
fn on_worker_thread(command: impl FnOnce() -> anyhow::Result<()> + Send) -> anyhow::Result<()> {
    // Fails only if the pool already exists, and then it is the one to run on anyway.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    // From outside the pool, `scope` runs its closure on one of the pool's threads.
    rayon::scope(|_| command())
}

/// The error and its causes on one line, no backtrace. Some libraries repeat their cause in their
/// own message; a cause already spelled out is not printed again.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
