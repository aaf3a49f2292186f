//! `ddpm sample`, `info`, `import` and `export` end to end on ndarray.

mod common;

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use common::{ddpm, ok, text, tiny_run};
use ddpm_unet::SimpleUnetConfig;

#[test]
fn sample_info_and_export_a_trained_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let grid = dir.path().join("grid.png");
    let singles = dir.path().join("singles");
    let out = ok(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "4",
        "--backend",
        "ndarray",
        "--out",
        grid.to_str().unwrap(),
        "--out-dir",
        singles.to_str().unwrap(),
    ]);
    assert!(out.contains("EMA weights, step 4"), "{out}");
    assert_eq!(
        image::open(&grid).unwrap().to_rgb8().dimensions(),
        (2 * 10 + 2, 2 * 10 + 2)
    );
    let single = image::open(singles.join("0003.png")).unwrap();
    assert_eq!((single.width(), single.height()), (8, 8));

    // Same seed, same pictures; the raw weights give others.
    let again = dir.path().join("again.png");
    ok(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "4",
        "--backend",
        "ndarray",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&grid).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let raw = dir.path().join("raw.png");
    let out = ok(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "4",
        "--no-ema",
        "--backend",
        "ndarray",
        "--out",
        raw.to_str().unwrap(),
    ]);
    assert!(out.contains("raw weights"), "{out}");

    let strip = dir.path().join("strip.png");
    let out = ok(&[
        "sample",
        "--checkpoint",
        &run,
        "--strip",
        "--backend",
        "ndarray",
        "--out",
        strip.to_str().unwrap(),
    ]);
    assert!(out.contains("11 snapshots"), "{out}");
    assert_eq!(
        image::open(&strip).unwrap().to_rgb8().dimensions(),
        (11 * 10 + 2, 12)
    );

    let info = ok(&["info", &run]);
    for expected in [
        "step         4",
        "SimpleUnet, channels [4, 8]",
        "parameters   ",
        "8x8, 1 channel(s)",
        "EMA          yes",
    ] {
        assert!(info.contains(expected), "{expected}: {info}");
    }

    let exported = dir.path().join("w.safetensors");
    let out = ok(&["export", &run, "--out", exported.to_str().unwrap()]);
    assert!(out.contains("EMA weights"), "{out}");
    let bytes = std::fs::read(&exported).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert!(
        header.get("time_mlp.1.weight").is_some()
            && header.get("downs.0.bnorm1.running_var").is_some(),
        "{header}"
    );
}

#[test]
fn the_seed_fixture_imports_samples_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../unet/tests/fixtures");
    let pth = fixtures.join("seed_small.pth");
    let run = dir.path().join("seed");
    let out = ok(&[
        "import",
        pth.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--image-size",
        "16",
    ]);
    assert!(
        out.contains("channels [4, 8, 16, 32], 64687 parameters"),
        "{out}"
    );
    let info = ok(&["info", run.to_str().unwrap()]);
    assert!(
        info.contains("imported weights") && info.contains("16x16, 3 channel(s)"),
        "{info}"
    );
    let grid = dir.path().join("seed.png");
    ok(&[
        "sample",
        "--checkpoint",
        run.to_str().unwrap(),
        "-n",
        "2",
        "--backend",
        "ndarray",
        "--out",
        grid.to_str().unwrap(),
    ]);
    assert_eq!(
        image::open(&grid).unwrap().to_rgb8().dimensions(),
        (2 * 18 + 2, 16 + 4)
    );

    // Exported weights give the PyTorch module's outputs, like the .pth they came from.
    let exported = dir.path().join("seed.safetensors");
    ok(&[
        "export",
        run.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    let device = Default::default();
    let config = SimpleUnetConfig::new().with_channels(vec![4, 8, 16, 32]);
    let from_export = config
        .init::<NdArray>(&device)
        .unwrap()
        .load_safetensors(&exported)
        .unwrap();
    let from_pth = config
        .init::<NdArray>(&device)
        .unwrap()
        .load_seed_checkpoint(&pth)
        .unwrap();
    let x = Tensor::<NdArray, 4>::from_data(
        TensorData::new(
            (0..768)
                .map(|i| (i as f32 / 384.0) - 1.0)
                .collect::<Vec<_>>(),
            [1, 3, 16, 16],
        ),
        &device,
    );
    let t = Tensor::<NdArray, 1, Int>::from_data(TensorData::new(vec![42i64], [1]), &device);
    let a: Vec<f32> = from_export
        .forward(x.clone(), t.clone())
        .into_data()
        .to_vec()
        .unwrap();
    let b: Vec<f32> = from_pth.forward(x, t).into_data().to_vec().unwrap();
    assert_eq!(a, b);

    let again = ddpm(&[
        "import",
        pth.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        !again.status.success() && text(&again).contains("already holds a run"),
        "{}",
        text(&again)
    );
}

#[test]
fn checkpoint_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let not_pth = dir.path().join("notes.pth");
    std::fs::write(&not_pth, "hello").unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../unet/tests/fixtures");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "sample".into(),
                "--checkpoint".into(),
                missing.display().to_string(),
            ],
            "no such checkpoint or run folder",
        ),
        (
            vec!["info".into(), missing.display().to_string()],
            "no such checkpoint or run folder",
        ),
        (
            vec![
                "import".into(),
                not_pth.display().to_string(),
                "--out".into(),
                dir.path().join("x").display().to_string(),
            ],
            "cannot read weights from",
        ),
        (
            vec![
                "import".into(),
                fixtures.join("ddpm_small.pth").display().to_string(),
                "--out".into(),
                dir.path().join("y").display().to_string(),
            ],
            "missing tensor 'conv0.weight'",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = ddpm(&args);
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(!run.status.success(), "{args:?}");
        assert!(
            stderr.starts_with("error: ")
                && stderr.contains(expected)
                && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    let run = tiny_run(dir.path());
    let unwritable = dir.path().join("no/such/dir/grid.png");
    let out = ddpm(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "1",
        "--backend",
        "ndarray",
        "--out",
        unwritable.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success()
            && text(&out).contains("cannot write")
            && text(&out).contains("does not exist"),
        "{}",
        text(&out)
    );
}
