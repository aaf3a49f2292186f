//! The local Python environment used only to make fixtures and run reference benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Packages the fixture and benchmark scripts import: (PyPI name, module name).
const PACKAGES: &[(&str, &str)] = &[
    ("torch", "torch"),
    ("diffusers", "diffusers"),
    ("numpy", "numpy"),
    ("pytorch-fid", "pytorch_fid"),
    ("scipy", "scipy"),
    ("mpmath", "mpmath"),
];

/// The venv's python at `<root>/.venv`, created and filled from PyPI if it lacks the packages.
pub fn venv(root: &Path) -> Result<PathBuf> {
    let dir = root.join(".venv");
    let python = dir.join("bin/python");
    if !python.exists() {
        eprintln!("creating a Python venv in {}", dir.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
            .context("python3 -m venv failed: is Python 3 with the venv module installed?")?;
    }
    let modules: Vec<&str> = PACKAGES.iter().map(|&(_, module)| module).collect();
    let names: Vec<&str> = PACKAGES.iter().map(|&(name, _)| name).collect();
    let imports = format!("import {}", modules.join(", "));
    let has_packages = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_packages {
        eprintln!(
            "installing {} into {} (large: torch)",
            names.join(", "),
            dir.display()
        );
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(&names))
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
