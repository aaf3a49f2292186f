//! Import of the seed's PyTorch checkpoints and safetensors, against PyTorch's own outputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_ndarray::NdArray;
use ddpm_unet::{SimpleUnet, SimpleUnetConfig, WeightsError, trainable_params};
use serde_json::Value;

use common::{fixture_inputs, fixtures, floats, load_json, relative_error, usizes};

type B = NdArray<f32>;

fn config_of(fixture: &Value) -> SimpleUnetConfig {
    SimpleUnetConfig::new()
        .with_image_channels(fixture["image_channels"].as_u64().unwrap() as usize)
        .with_channels(usizes(&fixture["channels"]))
}

fn fresh_model(fixture: &Value) -> SimpleUnet<B> {
    config_of(fixture).init::<B>(&Default::default()).unwrap()
}

/// max |ours - torch| / max |torch| over the fixture's eval-mode output.
fn output_error(model: &SimpleUnet<B>, fixture: &Value) -> f64 {
    let (x, t) = fixture_inputs::<B>(fixture, &Default::default());
    let ours: Vec<f32> = model.forward(x, t).into_data().to_vec().unwrap();
    relative_error(&ours, &floats(&fixture["output"]))
}

#[test]
fn seed_checkpoint_loads_with_pytorch_outputs() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let model = fresh_model(&fixture);
    let before = output_error(&model, &fixture);
    let model = model
        .load_seed_checkpoint(&fixtures().join("seed_small.pth"))
        .unwrap();
    let error = output_error(&model, &fixture);
    println!(
        "small SimpleUnet, .pth import: relative error {error:e} (untrained model: {before:e})"
    );
    assert!(error <= 1e-4, "relative error {error}");
    assert!(before > 0.1, "a fresh model must not already match");
    assert_eq!(
        trainable_params(&model),
        fixture["trainable_params"].as_u64().unwrap() as usize
    );
}

#[test]
fn pytorch_written_safetensors_load_too() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let model = fresh_model(&fixture)
        .load_safetensors(&fixtures().join("seed_small.safetensors"))
        .unwrap();
    let error = output_error(&model, &fixture);
    assert!(error <= 1e-4, "relative error {error}");
}

#[test]
fn safetensors_export_round_trips_in_the_seeds_layout() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let model = fresh_model(&fixture)
        .load_seed_checkpoint(&fixtures().join("seed_small.pth"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    model.save_safetensors(&path).unwrap();

    // Same keys and shapes as the seed's state_dict (less num_batches_tracked), so PyTorch loads it.
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let ours: Vec<(String, Value)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v["shape"].clone()))
        .collect();
    let theirs: Vec<(String, Value)> = fixture["keys"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(ours, theirs);

    let reloaded = fresh_model(&fixture).load_safetensors(&path).unwrap();
    assert!(output_error(&reloaded, &fixture) <= 1e-4);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");

    // The same model gives the same bytes, save after save (each hash map orders its keys
    // differently, so several saves would catch an unordered header).
    assert_eq!(header["__metadata__"], serde_json::json!({"format": "pt"}));
    for _ in 0..4 {
        model.save_safetensors(&path).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "a save wrote other bytes"
        );
    }
}

#[test]
fn a_checkpoint_for_another_config_names_the_tensor() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let pth = fixtures().join("seed_small.pth");
    let device = Default::default();

    let gray = SimpleUnetConfig::new()
        .with_image_channels(1)
        .with_channels(vec![4, 8, 16, 32]);
    let err = gray
        .init::<B>(&device)
        .unwrap()
        .load_seed_checkpoint(&pth)
        .unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor 'conv0.weight' has shape [4, 3, 3, 3] in the file but [4, 1, 3, 3] in the model \
             (a checkpoint for another model config?)",
            pth.display()
        )
    );

    let deeper = SimpleUnetConfig::new().with_channels(vec![4, 8, 16, 32, 64]);
    let err = deeper
        .init::<B>(&device)
        .unwrap()
        .load_seed_checkpoint(&pth)
        .unwrap_err();
    assert!(err.to_string().contains("seed_small.pth"), "{err}");

    let shallower = SimpleUnetConfig::new().with_channels(vec![4, 8, 16]);
    let err = shallower
        .init::<B>(&device)
        .unwrap()
        .load_seed_checkpoint(&pth)
        .unwrap_err();
    assert!(err.to_string().contains("seed_small.pth"), "{err}");
    drop(fixture);
}

/// Rewrites the fixture's safetensors with one tensor dropped or one added, keeping the data
/// contiguous as the format requires.
fn edited_safetensors(dir: &Path, drop_key: Option<&str>, add_key: Option<&str>) -> PathBuf {
    let bytes = std::fs::read(fixtures().join("seed_small.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let body = &bytes[8 + header_len..];
    let mut tensors: Vec<(String, Value, Vec<u8>)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| *key != "__metadata__" && Some(key.as_str()) != drop_key)
        .map(|(key, info)| {
            let range = &info["data_offsets"];
            let (start, end) = (
                range[0].as_u64().unwrap() as usize,
                range[1].as_u64().unwrap() as usize,
            );
            (key.clone(), info.clone(), body[start..end].to_vec())
        })
        .collect();
    let stored = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .count();
    assert_eq!(
        tensors.len() + drop_key.map_or(0, |_| 1),
        stored,
        "dropped key not found"
    );
    if let Some(key) = add_key {
        tensors.push((
            key.into(),
            serde_json::json!({"dtype": "F32", "shape": [4]}),
            vec![0u8; 16],
        ));
    }
    let (mut new_header, mut data) = (serde_json::Map::new(), Vec::new());
    for (key, mut info, bytes) in tensors {
        info["data_offsets"] = serde_json::json!([data.len(), data.len() + bytes.len()]);
        data.extend(bytes);
        new_header.insert(key, info);
    }
    let new_header = serde_json::to_vec(&new_header).unwrap();
    let mut out = (new_header.len() as u64).to_le_bytes().to_vec();
    out.extend(new_header);
    out.extend(data);
    let path = dir.join("edited.safetensors");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let dir = tempfile::tempdir().unwrap();

    let path = edited_safetensors(dir.path(), Some("downs.1.bnorm2.running_var"), None);
    let err = fresh_model(&fixture).load_safetensors(&path).unwrap_err();
    assert!(
        matches!(&err, WeightsError::MissingKey { key, .. } if key == "downs.1.bnorm2.running_var"),
        "{err:?}"
    );

    let path = edited_safetensors(dir.path(), Some("time_mlp.1.weight"), None);
    let err = fresh_model(&fixture).load_safetensors(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: missing tensor 'time_mlp.1.weight'", path.display())
    );

    let path = edited_safetensors(dir.path(), None, Some("mid.attn.scale"));
    let err = fresh_model(&fixture).load_safetensors(&path).unwrap_err();
    assert!(
        matches!(&err, WeightsError::UnexpectedKey { key, .. } if key == "mid.attn.scale"),
        "{err:?}"
    );
}

#[test]
fn truncated_or_missing_files_are_read_errors() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let dir = tempfile::tempdir().unwrap();
    for name in ["seed_small.pth", "seed_small.safetensors"] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let truncated = dir.path().join(name);
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = if name.ends_with(".pth") {
            fresh_model(&fixture)
                .load_seed_checkpoint(&truncated)
                .unwrap_err()
        } else {
            fresh_model(&fixture)
                .load_safetensors(&truncated)
                .unwrap_err()
        };
        assert!(matches!(err, WeightsError::Read { .. }), "{name}: {err:?}");
        assert!(
            err.to_string().contains(truncated.to_str().unwrap()),
            "{err}"
        );
    }
    let missing = dir.path().join("nope.pth");
    let err = fresh_model(&fixture)
        .load_seed_checkpoint(&missing)
        .unwrap_err();
    assert!(
        matches!(err, WeightsError::Read { .. }) && err.to_string().contains("nope.pth"),
        "{err}"
    );
    let err = fresh_model(&fixture)
        .load_safetensors(&dir.path().join("nope.safetensors"))
        .unwrap_err();
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}

/// The Python that has torch: $DDPM_PYTHON, the workspace's .venv, or python3.
fn python_with_torch() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let candidates = std::env::var_os("DDPM_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")]);
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import torch, safetensors"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// The full 62.4M-parameter model's fixture is too large to commit, so PyTorch makes it here.
#[test]
#[ignore = "needs a Python with torch: run `cargo xtask fixtures` once (or set DDPM_PYTHON), then --ignored"]
fn full_size_seed_checkpoint_matches_pytorch() {
    let python = python_with_torch()
        .expect("no Python with torch: set DDPM_PYTHON or run `cargo xtask fixtures` once");
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/scripts/simple_unet_fixture.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg("--full")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the fixture script failed");
    let fixture = load_json(&dir.path().join("seed_full.json"));
    let model = SimpleUnetConfig::new()
        .init::<B>(&Default::default())
        .unwrap();
    let model = model
        .load_seed_checkpoint(&dir.path().join("seed_full.pth"))
        .unwrap();
    let error = output_error(&model, &fixture);
    println!("full SimpleUnet (62,438,883 params), .pth import: relative error {error:e}");
    assert!(error <= 1e-4, "relative error {error}");
}

#[test]
fn the_config_is_read_from_a_seed_checkpoint() {
    let fixture = load_json(&fixtures().join("seed_small.json"));
    let config =
        SimpleUnetConfig::from_seed_checkpoint(&fixtures().join("seed_small.pth")).unwrap();
    assert_eq!(config, config_of(&fixture));
    let err =
        SimpleUnetConfig::from_seed_checkpoint(&fixtures().join("ddpm_small.pth")).unwrap_err();
    assert!(
        err.to_string().contains("missing tensor 'conv0.weight'"),
        "{err}"
    );
}
