//! What the eval tests share: the shared FID weights, the fixtures, flex as the backend.

#![allow(dead_code)]

use std::path::PathBuf;

/// The backend the tests compute on.
pub type B = burn_flex::Flex<f32>;

/// `../shared/weights/pt_inception-2015-12-05.pth` beside the checkout.
pub fn weights() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/weights/pt_inception-2015-12-05.pth")
}

/// A file of `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A JSON fixture, parsed.
pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn floats(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}
