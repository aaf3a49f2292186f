//! `cargo xtask bench`: our training and sampling steps against a PyTorch reference of the same
//! model, batch, image size and thread count, alternating the two, several repetitions each.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

/// Timed steps per repetition by default.
const ITERS: usize = 5;
/// The same for the cpu-demo model on flex and in PyTorch, whose steps take milliseconds: 5 of
/// them are too short a sample on a shared machine to agree from one repetition to the next.
const FAST_MODEL_ITERS: usize = 40;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Cases as case:preset:batch (default: train and sample of the seed's SimpleUnet and of the
    /// paper's U-Net (ddpm-cifar10) at batch 8, and of the cpu-demo model at batch 64; with
    /// --cuda the seed's at 64 and 512 and the paper's at 128).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Our backends to measure (default: flex and ndarray on the CPU; cuda with --cuda). On the
    /// GPU `cuda-cudnn`, `cuda-fixed` and `cuda-tuned` name the `--gpu-kernels` too.
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// Measure on the GPU: burn-cuda against PyTorch eager on CUDA.
    #[arg(long)]
    cuda: bool,
    /// Precisions (default: f32; with --cuda f32 and bf16, our mixed precision against PyTorch's
    /// autocast).
    #[arg(long, value_delimiter = ',')]
    dtypes: Vec<String>,
    /// Number of alternating repetitions of each case.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Timed steps per repetition, after 2 untimed ones (default: 40 for the cpu-demo model on flex
    /// and PyTorch, whose steps take milliseconds, so that a repetition spans a second or more; 5
    /// otherwise, ndarray's cpu-demo steps included).
    #[arg(long)]
    iters: Option<usize>,
    /// CPU threads on both sides (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// A built `ddpm` binary (default: build one with `cargo build --release`).
    #[arg(long)]
    ddpm: Option<PathBuf>,
    /// A Python with torch (default: the project's .venv, made if missing).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/bench.json")]
    out: PathBuf,
}

/// Runs the benchmark and prints the table.
pub fn run(args: &BenchArgs, root: &Path) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let ddpm = match &args.ddpm {
        Some(path) => path.clone(),
        None => build_ddpm(root)?,
    };
    let python = match &args.python {
        Some(path) => path.clone(),
        None => crate::python::venv(root)?,
    };
    let script = root.join("xtask/scripts/bench_reference.py");
    let default_cases: &[&str] = if args.cuda {
        &[
            "train:seed:64",
            "sample:seed:64",
            "train:seed:512",
            "sample:seed:512",
            "train:ddpm-cifar10:128",
            "sample:ddpm-cifar10:128",
        ]
    } else {
        &[
            "train:seed:8",
            "sample:seed:8",
            "train:cpu-demo:64",
            "sample:cpu-demo:64",
            "train:ddpm-cifar10:8",
            "sample:ddpm-cifar10:8",
        ]
    };
    let cases: Vec<String> = if args.cases.is_empty() {
        default_cases.iter().map(|c| c.to_string()).collect()
    } else {
        args.cases.clone()
    };
    let backends: Vec<String> = match (args.backends.is_empty(), args.cuda) {
        (false, _) => args.backends.clone(),
        (true, true) => vec!["cuda".into()],
        (true, false) => vec!["flex".into(), "ndarray".into()],
    };
    let device = if args.cuda { "cuda" } else { "cpu" };
    let dtypes: Vec<String> = match (args.dtypes.is_empty(), args.cuda) {
        (false, _) => args.dtypes.clone(),
        (true, true) => vec!["f32".into(), "bf16".into()],
        (true, false) => vec!["f32".into()],
    };
    // The ceiling the model's FLOP/s are compared to: bf16 on the GPU (as the targets say), f32
    // on the CPU at the benchmark's thread count.
    let rate_dtype = if args.cuda { "bf16" } else { "f32" };
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .args(["--matmul-rate", "--device", device, "--dtype", rate_dtype])
        .args(["--threads", &threads.to_string()]);
    let matmul_rate = run_json(&mut command)?["matmul_flops_per_second"]
        .as_f64()
        .context("no matrix rate")?;
    println!(
        "measured {rate_dtype} matrix rate (PyTorch on {device}): {:.1} GFLOP/s",
        matmul_rate / 1e9
    );
    println!(
        "benchmark: {threads} CPU thread(s) on both sides, {} repetitions of {} timed steps, median",
        args.reps,
        args.iters.map_or(
            format!("{ITERS} (cpu-demo on flex and PyTorch: {FAST_MODEL_ITERS})"),
            |iters| iters.to_string()
        )
    );
    let mut rows = Vec::new();
    for (case, dtype) in cases
        .iter()
        .flat_map(|c| dtypes.iter().map(move |d| (c, d)))
    {
        let [kind, preset, batch] = parse_case(case)?;
        let iters = |backend: &str| {
            let fast = preset == "cpu-demo" && backend != "ndarray";
            let default = if fast { FAST_MODEL_ITERS } else { ITERS };
            args.iters.unwrap_or(default).to_string()
        };
        let (skipped, backends): (Vec<&String>, Vec<&String>) =
            backends.iter().partition(|b| skip(b, preset, args));
        for backend in skipped {
            println!(
                "{case:<20} {backend:<7} skipped (about 90 s a step; name it in --cases to run it)"
            );
        }
        let mut flops_per_image = 0.0;
        let mut ours: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
        let mut theirs = Vec::new();
        for _ in 0..args.reps {
            for (i, backend) in backends.iter().enumerate() {
                let mut command = Command::new(&ddpm);
                let (name, gpu_kernels) = match backend.split_once('-') {
                    Some((name, kernels)) => (name, Some(kernels)),
                    None => (backend.as_str(), None),
                };
                command
                    .args([
                        "bench", "--case", kind, "--preset", preset, "--batch", batch,
                    ])
                    .args(["--iters", &iters(backend), "--backend", name])
                    .args(gpu_kernels.iter().flat_map(|k| ["--gpu-kernels", k]))
                    .args(["--precision", dtype])
                    .env("RAYON_NUM_THREADS", threads.to_string());
                match run_json(&mut command).and_then(|r| images_per_second(&r)) {
                    Ok(rate) => ours[i].push(rate),
                    Err(error) => eprintln!("{case} {backend} {dtype}: {error:#}"),
                }
            }
            let mut command = Command::new(&python);
            command
                .arg(&script)
                .args(["--case", kind, "--preset", preset, "--batch", batch])
                .args([
                    "--iters",
                    &iters("pytorch"),
                    "--threads",
                    &threads.to_string(),
                ])
                .args(["--device", device, "--dtype", dtype]);
            match run_json(&mut command) {
                Ok(result) => {
                    flops_per_image = result["flops_per_image"].as_f64().unwrap_or(0.0);
                    theirs.push(images_per_second(&result)?);
                }
                Err(error) => eprintln!("{case} pytorch {dtype}: {error:#}"),
            }
        }
        let reference = median(&theirs);
        let share = |images_per_second: f64| images_per_second * flops_per_image / matmul_rate;
        for (backend, runs) in backends.iter().zip(&ours) {
            let ours = median(runs);
            println!(
                "{case:<20} {backend:<7} {dtype:<4}  ours {ours:>9.2} img/s  pytorch {reference:>9.2} img/s  ratio {:.2}  of the {rate_dtype} matrix rate: ours {:.1}%, pytorch {:.1}%",
                ours / reference,
                share(ours) * 100.0,
                share(reference) * 100.0,
            );
            rows.push(json!({
                "case": kind, "preset": preset, "batch": batch.parse::<usize>()?,
                "backend": backend, "dtype": dtype, "threads": threads,
                "flops_per_image": flops_per_image,
                "ours_share_of_matrix_rate": share(ours),
                "pytorch_share_of_matrix_rate": share(reference),
                "ours_images_per_second": ours, "pytorch_images_per_second": reference,
                "ratio": ours / reference, "ours_runs": runs, "pytorch_runs": theirs,
            }));
        }
    }
    let report = json!({
        "device": device, "threads": threads,
        "matrix_rate": { "dtype": rate_dtype, "flops_per_second": matmul_rate },
        "rows": rows,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// burn-ndarray needs about 90 s for one training step of the seed's model at batch 8 here: by
/// default it runs the small model's cases only.
fn skip(backend: &str, preset: &str, args: &BenchArgs) -> bool {
    backend == "ndarray" && preset != "cpu-demo" && args.cases.is_empty()
}

fn parse_case(case: &str) -> Result<[&str; 3]> {
    let parts: Vec<&str> = case.split(':').collect();
    match parts[..] {
        [kind @ ("train" | "sample"), preset, batch] if batch.parse::<usize>().is_ok() => {
            Ok([kind, preset, batch])
        }
        _ => bail!("case '{case}' is not train|sample:<preset>:<batch>, e.g. train:seed:8"),
    }
}

fn build_ddpm(root: &Path) -> Result<PathBuf> {
    eprintln!("building the ddpm binary (cargo build --release -p ddpm-cli)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "ddpm-cli"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of ddpm-cli failed");
    }
    Ok(root.join("target/release/ddpm"))
}

/// Runs a benchmark process and parses the JSON line it prints last.
fn run_json(command: &mut Command) -> Result<Value> {
    let output = command
        .output()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("not a benchmark result: {line}"))
}

fn images_per_second(result: &Value) -> Result<f64> {
    result["images_per_second"]
        .as_f64()
        .context("the result has no images_per_second")
}

/// The median; NaN when every run failed.
fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
