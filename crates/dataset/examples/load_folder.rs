//! Loads a dataset the way training does and reports count, time and memory.
//!
//! `cargo run --release -p ddpm-dataset --example load_folder -- <folder> [image_size]`

use std::time::Instant;

use burn::data::dataset::Dataset;
use ddpm_dataset::{DataSource, ImageFolderOptions};

/// Peak resident memory of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: load_folder <folder> [image_size]");
        std::process::exit(2);
    };
    let image_size = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let source = DataSource::detect(path.as_ref());
    let options = ImageFolderOptions {
        image_size,
        ..Default::default()
    };
    let start = Instant::now();
    match source.load(&options) {
        Ok((store, report)) => {
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "{source}: {} images of {image_size}x{image_size} in {seconds:.1} s ({:.0} images/s, {} threads)",
                store.len(),
                store.len() as f64 / seconds,
                rayon::current_num_threads()
            );
            println!(
                "pixel cache {:.1} MiB, peak resident memory {:.1} MiB",
                store.bytes() as f64 / (1 << 20) as f64,
                peak_rss_mib().unwrap_or(f64::NAN)
            );
            if let Some(summary) = report.and_then(|r| r.skipped_summary()) {
                println!("{summary}");
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
