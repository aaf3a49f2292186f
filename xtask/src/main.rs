//! `cargo xtask <command>`: project chores that are not part of the library: dataset
//! downloads, test fixtures and the benchmark against PyTorch.

mod bench;
mod fetch;
mod python;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project chores for the ddpm workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download a dataset into data/<name>/ (mnist, cifar10, seed, or any --url), verified.
    FetchData(fetch::FetchArgs),
    /// Regenerate the committed PyTorch/diffusers test fixtures. Makes a local venv (.venv) with
    /// torch and diffusers from PyPI the first time.
    Fixtures,
    /// Our training and sampling throughput against PyTorch's, same model, batch and threads.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchData(args) => fetch::run(&args, &workspace_root()),
        Command::Fixtures => fixtures(),
        Command::Bench(args) => bench::run(&args, &workspace_root()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it). A copied xtask binary run elsewhere (the
/// GPU machine) takes the current folder when the compiled-in root is not there.
fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf();
    if built.join("Cargo.toml").is_file() {
        built
    } else {
        std::env::current_dir().unwrap_or(built)
    }
}

/// Scripts in `xtask/scripts/` that write the committed test fixtures.
const FIXTURE_SCRIPTS: &[&str] = &[
    "schedule_fixture.py",
    "sampler_fixture.py",
    "simple_unet_fixture.py",
    "ddpm_unet_fixture.py",
    "fid_fixture.py",
];

fn fixtures() -> Result<()> {
    let root = workspace_root();
    let python = python::venv(&root)?;
    for script in FIXTURE_SCRIPTS {
        python::run_script(&python, &root.join("xtask/scripts").join(script), &root)?;
    }
    Ok(())
}
