//! `ddpm bench` end to end: one JSON line, the batch-gathering switch and flex's kernels.

mod common;

use common::ddpm;

/// The JSON line `ddpm bench` prints for a one-step cpu-demo sampling run on ndarray, or on what
/// `extra` flags say.
fn bench(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench", "--case", "sample", "--preset", "cpu-demo", "--batch", "2", "--warmup", "0",
        "--iters", "1",
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--backend") {
        args.extend_from_slice(&["--backend", "ndarray"]);
    }
    let run = ddpm(&args);
    assert!(run.status.success(), "{}", common::text(&run));
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn reports_one_step_and_whether_the_batch_was_gathered() {
    let result = bench(&[]);
    assert_eq!(result["case"], "sample");
    assert_eq!(result["backend"], "ndarray-f32");
    assert_eq!(result["parameters"], 267_313);
    assert_eq!(result["seconds"].as_array().unwrap().len(), 1);
    assert!(result["images_per_second"].as_f64().unwrap() > 0.0);
    // On by default on a CPU backend; `--batch-gathering off` turns it off.
    assert_eq!(result["batch_gathering"], true);
    assert_eq!(
        bench(&["--batch-gathering", "off"])["batch_gathering"],
        false
    );
    // ndarray has no kernels of ours.
    assert_eq!(result["own_conv"], false);
    assert_eq!(result["own_norm"], false);
    assert_eq!(result["own_attention"], false);
    assert_eq!(result["own_dropout"], false);
    assert_eq!(result["own_adam"], false);
}

#[test]
fn flex_runs_on_this_projects_kernels_unless_told_not_to() {
    let result = bench(&["--backend", "flex"]);
    assert_eq!(result["backend"], "flex-f32");
    assert_eq!(result["own_conv"], true);
    assert_eq!(result["own_norm"], true);
    assert_eq!(result["own_attention"], true);
    assert_eq!(result["own_dropout"], true);
    let off = bench(&["--backend", "flex", "--own-conv", "off"]);
    assert_eq!(
        (&off["own_conv"], &off["own_norm"]),
        (&false.into(), &true.into())
    );
    let off = bench(&["--backend", "flex", "--own-norm", "off"]);
    assert_eq!(
        (&off["own_conv"], &off["own_norm"]),
        (&true.into(), &false.into())
    );
}
