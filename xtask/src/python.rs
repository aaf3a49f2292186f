//! The local Python environment used only to make fixtures and run reference benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Packages the fixture and benchmark scripts import.
const PACKAGES: &[&str] = &["torch", "diffusers", "numpy"];

/// The venv's python at `<root>/.venv`, created and filled from PyPI if it lacks the packages.
pub fn venv(root: &Path) -> Result<PathBuf> {
    let dir = root.join(".venv");
    let python = dir.join("bin/python");
    if !python.exists() {
        eprintln!("creating a Python venv in {}", dir.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
            .context("python3 -m venv failed: is Python 3 with the venv module installed?")?;
    }
    let imports = format!("import {}", PACKAGES.join(", "));
    let has_packages = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_packages {
        eprintln!(
            "installing {} into {} (large: torch)",
            PACKAGES.join(", "),
            dir.display()
        );
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PACKAGES))
        .context("pip could not install the reference packages (is PyPI reachable?)")?;
    }
    Ok(python)
}

/// Runs one script with the workspace root as its argument.
pub fn run_script(python: &Path, script: &Path, root: &Path) -> Result<()> {
    run(Command::new(python).arg(script).arg(root))
        .with_context(|| format!("{} failed", script.display()))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} exited with {status}", command.get_program());
    }
    Ok(())
}
