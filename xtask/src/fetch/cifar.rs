//! CIFAR-10's binary release to a folder of PNGs: `train|test/<class>/<nnnnn>.png`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::RgbImage;
use rayon::prelude::*;

/// The published class names, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Bytes per record: a label, then 1024 red, 1024 green and 1024 blue values (row-major 32x32).
const RECORD: usize = 1 + 3 * 1024;

/// Converts every batch of `cifar-10-binary.tar.gz` into PNGs under `out`; returns the count.
pub fn convert_binary_archive(archive: &Path, out: &Path) -> Result<usize> {
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let (mut train, mut test) = (0usize, 0usize);
    let entries = tar
        .entries()
        .with_context(|| format!("{} is not a tar.gz archive", archive.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{} is damaged", archive.display()))?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let (split, counter) = if name.starts_with("data_batch_") && name.ends_with(".bin") {
            ("train", &mut train)
        } else if name == "test_batch.bin" {
            ("test", &mut test)
        } else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        *counter += write_batch(&bytes, &out.join(split), *counter, name)?;
    }
    if train + test == 0 {
        bail!(
            "{} holds no CIFAR-10 binary batches (data_batch_N.bin, test_batch.bin)",
            archive.display()
        );
    }
    Ok(train + test)
}

/// Writes one batch file's records as PNGs numbered from `first`; returns how many.
fn write_batch(bytes: &[u8], dir: &Path, first: usize, name: &str) -> Result<usize> {
    if !bytes.len().is_multiple_of(RECORD) {
        bail!(
            "{name}: {} bytes is not a whole number of {RECORD}-byte records",
            bytes.len()
        );
    }
    for class in CLASSES {
        std::fs::create_dir_all(dir.join(class))?;
    }
    bytes
        .par_chunks(RECORD)
        .enumerate()
        .try_for_each(|(i, record)| {
            let label = record[0] as usize;
            let class = CLASSES
                .get(label)
                .with_context(|| format!("{name}: record {i} has label {label}"))?;
            let planes = &record[1..];
            let image = RgbImage::from_fn(32, 32, |x, y| {
                let p = (y * 32 + x) as usize;
                image::Rgb([planes[p], planes[1024 + p], planes[2048 + p]])
            });
            let path = dir.join(class).join(format!("{:05}.png", first + i));
            image
                .save(&path)
                .with_context(|| format!("cannot write {}", path.display()))
        })?;
    Ok(bytes.len() / RECORD)
}
