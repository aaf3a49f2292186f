//! `ddpm train` end to end with tiny recipes, on the real MNIST digits the repository ships.

mod common;

use std::path::Path;

use common::{ddpm, text, tiny_recipe};

#[test]
fn trains_then_refuses_to_overwrite_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let runs = dir.path().join("runs");
    let (recipe, runs) = (recipe.to_str().unwrap(), runs.to_str().unwrap());
    for backend in ["ndarray", "flex"] {
        let args = [
            "train",
            "--config",
            recipe,
            "--backend",
            backend,
            "--run",
            backend,
            "--checkpoint-dir",
            runs,
        ];
        let run = ddpm(&args);
        assert!(run.status.success(), "{}", text(&run));
        assert!(text(&run).contains("trained 4 steps"), "{}", text(&run));
        let run_dir = Path::new(runs).join(backend);
        assert!(run_dir.join("step-000004/model.mpk").is_file());
        let grid = image::open(run_dir.join("samples/step-000004.png")).unwrap();
        assert_eq!((grid.width(), grid.height()), (2 * 10 + 2, 2 * 10 + 2));
        let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 4);

        // The same run again would overwrite it: refused, nothing touched.
        let again = ddpm(&args);
        assert!(!again.status.success());
        assert!(
            text(&again).contains("already holds a run; continue it with --resume"),
            "{}",
            text(&again)
        );
        assert_eq!(
            std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap(),
            metrics
        );

        let run_dir = run_dir.to_str().unwrap();
        let resumed = ddpm(&[
            "train",
            "--resume",
            run_dir,
            "--steps",
            "6",
            "--backend",
            backend,
        ]);
        assert!(resumed.status.success(), "{}", text(&resumed));
        assert!(
            text(&resumed).contains("from step 4 to 6")
                && text(&resumed).contains("trained 6 steps"),
            "{}",
            text(&resumed)
        );
    }
}

#[test]
fn bad_recipes_and_paths_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"steps\": 3}").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), bad.display().to_string()],
            "is not a training recipe",
        ),
        (
            vec![
                "--config".into(),
                dir.path().join("none.json").display().to_string(),
            ],
            "cannot read",
        ),
        (
            vec![
                "--resume".into(),
                dir.path().join("nowhere").display().to_string(),
            ],
            "no such checkpoint or run folder",
        ),
        (
            vec![
                "--data".into(),
                dir.path().join("missing").display().to_string(),
                "--run".into(),
                "x".into(),
            ],
            "does not exist",
        ),
        (
            vec!["--preset".into(), "ddpm-cifar10".into()],
            "does not exist; `cargo xtask fetch-data cifar10` downloads it",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "train".to_string(),
            "--checkpoint-dir".into(),
            dir.path().join("runs").display().to_string(),
        ];
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = ddpm(&args);
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(!run.status.success(), "{args:?}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn corrupt_images_are_skipped_with_a_warning_or_fatal_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    // An image folder: the real digits as PNGs plus one corrupt file.
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let idx = ddpm_dataset::read_idx_images(&dir.path().join("digits/t10k-images-idx3-ubyte.gz"))
        .unwrap();
    for i in 0..16 {
        let pixels = idx.pixels[i * 784..(i + 1) * 784].to_vec();
        image::GrayImage::from_raw(28, 28, pixels)
            .unwrap()
            .save(images.join(format!("{i}.png")))
            .unwrap();
    }
    std::fs::write(images.join("broken.png"), b"not a png at all").unwrap();
    let runs = dir.path().join("runs");
    let base = [
        "train",
        "--config",
        recipe.to_str().unwrap(),
        "--data",
        images.to_str().unwrap(),
        "--steps",
        "1",
    ];
    let mut lenient = base.to_vec();
    lenient.extend([
        "--run",
        "lenient",
        "--checkpoint-dir",
        runs.to_str().unwrap(),
    ]);
    let run = ddpm(&lenient);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("skipped 1 of 17 image files") && text(&run).contains("broken.png"),
        "{}",
        text(&run)
    );
    let mut strict = base.to_vec();
    strict.extend([
        "--strict",
        "--run",
        "strict",
        "--checkpoint-dir",
        runs.to_str().unwrap(),
    ]);
    let run = ddpm(&strict);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.lines().last().unwrap().contains("cannot decode") && stderr.contains("broken.png"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let runs = dir.path().join("runs");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ddpm"))
        .args([
            "train",
            "--config",
            recipe.to_str().unwrap(),
            "--steps",
            "1000000",
            "--backend",
            "ndarray",
        ])
        .args(["--run", "long", "--checkpoint-dir", runs.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training has written its first metrics, then interrupt it like Ctrl-C does.
    let metrics = runs.join("long/metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&metrics).map_or(true, |m| m.len() == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "training did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "exit {status}: {stdout}");
    assert!(
        stdout.contains("interrupted at step")
            && stdout.contains("resume with: ddpm train --resume"),
        "{stdout}"
    );
    let index = ddpm_trainer::RunIndex::read(&runs.join("long")).unwrap();
    let latest = index
        .latest
        .expect("a checkpoint was saved on interruption");
    assert!(runs.join("long").join(&latest).join("model.mpk").is_file());
    let step: u64 = latest.trim_start_matches("step-").parse().unwrap();
    assert!((1..1_000_000).contains(&step), "{latest}");
}
