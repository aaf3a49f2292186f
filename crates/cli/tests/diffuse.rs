//! `ddpm diffuse` end to end, on a real CIFAR-10 photo from ../shared/datasets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ddpm_schedule::NoiseScheduleConfig;
use image::RgbImage;

const PHOTO: &str = "cifar10_jpg/train/automobile/0001.jpg";

fn shared_datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

/// Extracts one real JPEG from the shared CIFAR-10 archive into `dir`.
fn real_photo(dir: &Path) -> PathBuf {
    let archive = shared_datasets().join("cifar10-jpg.tar.gz");
    let file = std::fs::File::open(&archive)
        .unwrap_or_else(|e| panic!("{} is needed for this test: {e}", archive.display()));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(PHOTO) {
            let out = dir.join("photo.jpg");
            entry.unpack(&out).unwrap();
            return out;
        }
    }
    panic!("{PHOTO} not found in {}", archive.display());
}

fn ddpm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddpm"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Frame `i` of a strip of `size`-pixel frames with 2-pixel gaps, as values in [-1, 1].
fn frame(strip: &RgbImage, i: u32, size: u32) -> Vec<f64> {
    let x0 = 2 + i * (size + 2);
    let mut values = Vec::new();
    for y in 2..2 + size {
        for x in x0..x0 + size {
            values.extend(
                strip
                    .get_pixel(x, y)
                    .0
                    .iter()
                    .map(|&v| v as f64 / 127.5 - 1.0),
            );
        }
    }
    values
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn writes_a_strip_of_the_forward_process() {
    let dir = tempfile::tempdir().unwrap();
    let photo = real_photo(dir.path());
    let out = dir.path().join("strip.png");
    let run = ddpm(&[
        "diffuse",
        "--image",
        photo.to_str().unwrap(),
        "--size",
        "32",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "ddpm diffuse failed: {}",
        stderr(&run)
    );

    let strip = image::open(&out).unwrap().to_rgb8();
    let (size, frames) = (32, 11);
    assert_eq!(strip.dimensions(), (frames * (size + 2) + 2, size + 4));

    // CIFAR photos are 32x32 already, so frame 0 is the photo plus noise of std 0.01.
    let clean: Vec<f64> = image::open(&photo)
        .unwrap()
        .to_rgb8()
        .pixels()
        .flat_map(|p| p.0)
        .map(|v| v as f64 / 127.5 - 1.0)
        .collect();
    let first = frame(&strip, 0, size);
    let mean_abs = first
        .iter()
        .zip(&clean)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / clean.len() as f64;
    assert!(
        mean_abs < 0.03,
        "frame 0 differs from the photo by {mean_abs} on average"
    );

    // Frame i holds x_t at t = 30 i (then 299): its residual after removing sqrt(alpha_bar) x0
    // has the forward process's standard deviation, and the photo fades monotonically.
    let schedule = NoiseScheduleConfig::new().init().unwrap();
    let steps = [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 299];
    let correlations: Vec<f64> = (0..frames)
        .map(|i| correlation(&frame(&strip, i, size), &clean))
        .collect();
    for (i, &t) in steps.iter().enumerate().take(3).skip(1) {
        let x_t = frame(&strip, i as u32, size);
        let signal = schedule.sqrt_alphas_cumprod[t];
        let residual: Vec<f64> = x_t
            .iter()
            .zip(&clean)
            .map(|(x, c)| x - signal * c)
            .collect();
        let std = (residual.iter().map(|r| r * r).sum::<f64>() / residual.len() as f64).sqrt();
        let expected = schedule.sqrt_one_minus_alphas_cumprod[t];
        assert!(
            (std / expected - 1.0).abs() < 0.15,
            "t={t}: residual std {std}, expected {expected}"
        );
    }
    assert!(correlations[0] > 0.99, "{correlations:?}");
    assert!(
        correlations.windows(2).take(6).all(|w| w[1] < w[0]),
        "{correlations:?}"
    );
    assert!(
        correlations[10] < 0.25,
        "the last frame should be mostly noise: {correlations:?}"
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("11 frames"));
}

#[test]
fn same_seed_same_strip_and_other_schedules_work() {
    let dir = tempfile::tempdir().unwrap();
    let photo = real_photo(dir.path());
    let strip = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "diffuse",
            "--image",
            photo.to_str().unwrap(),
            "--size",
            "16",
            "--steps",
            "4",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let run = ddpm(&args);
        assert!(run.status.success(), "{args:?}: {}", stderr(&run));
        image::open(&out).unwrap().to_rgb8()
    };
    let a = strip("a.png", &["--seed", "5"]);
    assert_eq!(a.dimensions(), (5 * 18 + 2, 20));
    assert_eq!(a, strip("b.png", &["--seed", "5"]));
    assert_ne!(a, strip("c.png", &["--seed", "6"]));
    let cosine = strip("d.png", &["--schedule", "cosine", "--timesteps", "1000"]);
    assert_eq!(cosine.dimensions(), a.dimensions());
}

#[test]
fn bad_inputs_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let photo = real_photo(dir.path());
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a picture").unwrap();
    let truncated = dir.path().join("truncated.jpg");
    std::fs::write(&truncated, &std::fs::read(&photo).unwrap()[..200]).unwrap();
    let missing = dir.path().join("missing.png");
    let out = dir.path().join("strip.png");
    let unwritable = dir.path().join("no/such/folder/strip.png");

    let cases: [(&Path, &Path, &str); 4] = [
        (&missing, &out, "cannot read"),
        (&text, &out, "cannot decode"),
        (&truncated, &out, "is cut short"),
        (&photo, &unwritable, "cannot write"),
    ];
    for (image, out, expected) in cases {
        let run = ddpm(&[
            "diffuse",
            "--image",
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let message = stderr(&run);
        assert!(!run.status.success(), "{} should fail", image.display());
        assert!(
            message.starts_with("error: ") && message.contains(expected),
            "{message}"
        );
        let named = if expected == "cannot write" {
            out
        } else {
            image
        };
        assert!(message.contains(named.to_str().unwrap()), "{message}");
        assert!(
            !message.contains("panicked") && message.lines().count() == 1,
            "{message}"
        );
    }
    assert!(
        !out.exists(),
        "a failed run must not leave an output behind"
    );

    let run = ddpm(&[
        "diffuse",
        "--image",
        photo.to_str().unwrap(),
        "--timesteps",
        "0",
    ]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("timesteps must be at least 1"),
        "{}",
        stderr(&run)
    );
}
