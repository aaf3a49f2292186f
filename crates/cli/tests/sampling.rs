//! `ddpm sample` with DDIM, the sampler settings' errors and the backend choice, end to end.

mod common;

use common::{ddpm, ok, text, tiny_run};

fn sample(run: &str, extra: &[&str], out: &std::path::Path) -> std::process::Output {
    let mut args = vec![
        "sample",
        "--checkpoint",
        run,
        "-n",
        "4",
        "--backend",
        "ndarray",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ddpm(&args)
}

#[test]
fn ddim_samples_are_deterministic_and_differ_from_ddpm() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let path = |name: &str| dir.path().join(name);
    let ddim = ["--sampler", "ddim", "--steps", "10"];

    let first = sample(&run, &ddim, &path("ddim.png"));
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("with 10 DDIM steps"),
        "{}",
        text(&first)
    );
    assert_eq!(
        image::open(path("ddim.png"))
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (2 * 10 + 2, 2 * 10 + 2)
    );
    assert!(sample(&run, &ddim, &path("again.png")).status.success());
    let ddpm_run = sample(&run, &[], &path("ddpm.png"));
    assert!(
        text(&ddpm_run).contains("with 200 DDPM steps"),
        "{}",
        text(&ddpm_run)
    );
    let eta = sample(
        &run,
        &[
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--eta",
            "1",
            "--spacing",
            "trailing",
        ],
        &path("eta.png"),
    );
    assert!(eta.status.success(), "{}", text(&eta));

    let bytes = |name: &str| std::fs::read(path(name)).unwrap();
    assert_eq!(
        bytes("ddim.png"),
        bytes("again.png"),
        "same seed, same DDIM pictures"
    );
    assert_ne!(bytes("ddim.png"), bytes("ddpm.png"));
    assert_ne!(bytes("ddim.png"), bytes("eta.png"));

    let strip = path("strip.png");
    let out = ok(&[
        "sample",
        "--checkpoint",
        &run,
        "--sampler",
        "ddim",
        "--steps",
        "20",
        "--strip",
        "--backend",
        "ndarray",
        "--out",
        strip.to_str().unwrap(),
    ]);
    assert!(out.contains("11 snapshots"), "{out}");
}

#[test]
fn sampler_settings_are_checked_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let out = dir.path().join("x.png");
    let cases: [(&[&str], &str); 4] = [
        (&["--steps", "10"], "add --sampler ddim"),
        (&["--sampler", "ddim", "--steps", "0"], "between 1 and 200"),
        (
            &["--sampler", "ddim", "--steps", "201"],
            "between 1 and 200",
        ),
        (
            &["--sampler", "ddim", "--eta", "2"],
            "eta must be in [0, 1], got 2",
        ),
    ];
    for (extra, expected) in cases {
        let run = sample(&run, extra, &out);
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(!run.status.success(), "{extra:?}");
        assert!(
            stderr.lines().last().unwrap_or("").starts_with("error: ") && stderr.contains(expected),
            "{extra:?}: {stderr}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn cuda_without_a_driver_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let out = dir.path().join("gpu.png");
    let cuda = ddpm(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "1",
        "--backend",
        "cuda",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&cuda.stderr).into_owned();
    if cuda.status.success() {
        // A machine with a GPU: the picture was made there.
        assert!(stderr.contains("backend: cuda (GPU 0)"), "{stderr}");
        assert!(out.exists());
    } else {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: the cuda backend cannot run: "),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
