//! Shared by the CLI tests: running the binary, and a tiny recipe on real MNIST digits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ddpm_trainer::{Preset, TrainConfig};
use ddpm_unet::{DenoiserConfig, SimpleUnetConfig};

pub fn ddpm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddpm"))
        .args(args)
        .output()
        .unwrap()
}

/// stdout and stderr together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `ddpm` and returns its output, failing the test if it fails.
pub fn ok(args: &[&str]) -> String {
    let run = ddpm(args);
    assert!(run.status.success(), "{args:?}: {}", text(&run));
    text(&run)
}

/// A recipe small enough for a few steps in a test (8 px digits from the MNIST test images the
/// repository ships, a two-level SimpleUnet, 4 steps), written as JSON into `dir`.
pub fn tiny_recipe(dir: &Path) -> PathBuf {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
    let data = dir.join("digits");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        mnist.join("t10k-images-idx3-ubyte.gz"),
        data.join("t10k-images-idx3-ubyte.gz"),
    )
    .unwrap();
    let config = TrainConfig {
        model: DenoiserConfig::SimpleUnet(
            SimpleUnetConfig::new()
                .with_image_channels(1)
                .with_channels(vec![4, 8]),
        ),
        data: Some(data),
        image_size: 8,
        batch_size: 8,
        steps: 4,
        sample_every: 4,
        sample_count: 4,
        checkpoint_every: 2,
        log_every: 1,
        ..TrainConfig::preset(Preset::CpuDemo)
    };
    let path = dir.join("tiny.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// Trains the tiny recipe for 4 steps on ndarray; returns the run folder.
pub fn tiny_run(dir: &Path) -> String {
    let recipe = tiny_recipe(dir);
    let runs = dir.join("runs");
    ok(&[
        "train",
        "--config",
        recipe.to_str().unwrap(),
        "--backend",
        "ndarray",
        "--run",
        "tiny",
        "--checkpoint-dir",
        runs.to_str().unwrap(),
    ]);
    runs.join("tiny").display().to_string()
}
