//! Real data for the dataset tests, from ../shared/datasets beside the checkout.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn shared_datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

pub fn mnist_dir() -> PathBuf {
    shared_datasets().join("mnist")
}

/// The first `count` JPEGs of each listed CIFAR-10 class folder, extracted into `dir` keeping
/// their archive paths (`cifar10_jpg/train/<class>/<n>.jpg`). Returns the extracted paths.
pub fn cifar_jpegs(dir: &Path, classes: &[&str], count: usize) -> Vec<PathBuf> {
    let archive = shared_datasets().join("cifar10-jpg.tar.gz");
    let file = std::fs::File::open(&archive)
        .unwrap_or_else(|e| panic!("{} is needed for this test: {e}", archive.display()));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut taken = vec![0; classes.len()];
    let mut out = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let Some(class) = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|c| c.to_str())
        else {
            continue;
        };
        let Some(i) = classes.iter().position(|c| *c == class) else {
            continue;
        };
        if !path.starts_with("cifar10_jpg/train")
            || taken[i] == count
            || entry.header().entry_type().is_dir()
        {
            continue;
        }
        let target = dir.join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        entry.unpack(&target).unwrap();
        out.push(target);
        taken[i] += 1;
        if taken.iter().all(|&t| t == count) {
            break;
        }
    }
    assert!(
        taken.iter().all(|&t| t == count),
        "not enough CIFAR images: {taken:?}"
    );
    out
}
