//! FID between two folders of real CIFAR-10 test photos (the first 200 cats and the first 200
//! dogs of the shared JPEG archive) against pytorch-fid's value for the same files and weights.

mod common;

use std::path::Path;

use common::{B, json, weights};
use ddpm_eval::{FidInception, frechet_distance};

/// The first `count` files (by name) under `prefix` in the shared CIFAR-10 archive, into `dir`.
fn extract(prefix: &str, count: usize, dir: &Path) -> Vec<std::path::PathBuf> {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/cifar10-jpg.tar.gz");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    let mut files = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".jpg") {
            let path = dir.join(Path::new(&name).file_name().unwrap());
            entry.unpack(&path).unwrap();
            files.push(path);
        }
    }
    files.sort();
    for extra in files.split_off(count.min(files.len())) {
        std::fs::remove_file(extra).unwrap();
    }
    files
}

#[test]
fn fid_between_two_folders_matches_pytorch_fid() {
    let expected = json("folders.json");
    let per_folder = expected["per_folder"].as_u64().unwrap() as usize;
    let device = Default::default();
    let inception = FidInception::<B>::load(&weights(), &device)
        .unwrap()
        .with_ops(ddpm_flex::FlexKernels::default().inference());
    let mut stats = Vec::new();
    for class in ["cat", "dog"] {
        let dir = tempfile::tempdir().unwrap();
        let files = extract(
            &format!("cifar10_jpg/test/{class}/"),
            per_folder,
            dir.path(),
        );
        assert_eq!(files.len(), per_folder);
        let mut accumulator = inception.accumulator(0);
        inception
            .add_files(&mut accumulator, &files, 50, &device, |_, _| {})
            .unwrap();
        let folder = accumulator.finish();
        let trace: f64 = (0..2048).map(|i| folder.covariance[i * 2048 + i]).sum();
        println!(
            "{class}: mean sum {:.4} (pytorch-fid {}), trace {trace:.4} (pytorch-fid {})",
            folder.mean.iter().sum::<f64>(),
            expected[class]["mean_sum"],
            expected[class]["trace"]
        );
        stats.push(folder);
    }
    let fid = frechet_distance(&stats[0], &stats[1]).unwrap();
    let reference = expected["fid"].as_f64().unwrap();
    println!("FID ours {fid:.4}, pytorch-fid {reference:.4}");
    assert!(
        (fid - reference).abs() <= 0.005 * reference,
        "FID {fid} against pytorch-fid's {reference}"
    );
}
