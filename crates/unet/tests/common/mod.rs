//! Readers for the JSON fixtures written by `xtask/scripts/*_fixture.py`.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn floats(value: &Value) -> Vec<f32> {
    array(value).map(|v| v.as_f64().unwrap() as f32).collect()
}

pub fn usizes(value: &Value) -> Vec<usize> {
    array(value).map(|v| v.as_u64().unwrap() as usize).collect()
}

pub fn integers(value: &Value) -> Vec<i64> {
    array(value).map(|v| v.as_i64().unwrap()).collect()
}

/// Integer timesteps `[N]` as a tensor.
pub fn timesteps<B: Backend>(t: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(t.to_vec(), [t.len()]), device)
}

/// A fixture's model inputs: its `input` batch `[N, C, H, W]` and its `timesteps`.
pub fn fixture_inputs<B: Backend>(
    fixture: &Value,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let x = Tensor::from_data(
        TensorData::new(floats(&fixture["input"]), usizes(&fixture["input_shape"])),
        device,
    );
    (x, timesteps(&integers(&fixture["timesteps"]), device))
}

fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().expect("a JSON array").iter()
}

/// max |ours − reference| / max |reference|.
pub fn relative_error(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let worst = ours
        .iter()
        .zip(reference)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    worst / scale
}
