//! `ddpm bench` end to end on ndarray: one JSON line, and the batch-gathering switch.

mod common;

use common::ddpm;

/// The JSON line `ddpm bench` prints for a one-step cpu-demo sampling run with `extra` flags.
fn bench(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "--case",
        "sample",
        "--preset",
        "cpu-demo",
        "--batch",
        "2",
        "--warmup",
        "0",
        "--iters",
        "1",
        "--backend",
        "ndarray",
    ];
    args.extend_from_slice(extra);
    let run = ddpm(&args);
    assert!(run.status.success(), "{}", common::text(&run));
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn reports_one_step_and_whether_the_batch_was_gathered() {
    let result = bench(&[]);
    assert_eq!(result["case"], "sample");
    assert_eq!(result["backend"], "ndarray-f32");
    assert_eq!(result["parameters"], 236_113);
    assert_eq!(result["seconds"].as_array().unwrap().len(), 1);
    assert!(result["images_per_second"].as_f64().unwrap() > 0.0);
    // On by default on a CPU backend; `--batch-gathering off` turns it off.
    assert_eq!(result["batch_gathering"], true);
    assert_eq!(
        bench(&["--batch-gathering", "off"])["batch_gathering"],
        false
    );
}
