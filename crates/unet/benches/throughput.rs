//! Forward and forward+backward throughput of the noise predictors at 32 px on burn-ndarray.
//!
//! `cargo bench -p ddpm-unet --bench throughput [-- FILTER]`. Each case runs one warm-up
//! iteration, then repeats until it has run 3 iterations and at least 5 seconds; it prints
//! images per second. Not a test: nothing is asserted.

use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use burn_ndarray::NdArray;
use ddpm_unet::{DdpmUnetConfig, NoisePredictor, SimpleUnetConfig, trainable_params};

type B = NdArray<f32>;
type AD = Autodiff<B>;

/// Runs `step` (one batch) until 3 iterations and 5 s have passed; returns images per second.
fn images_per_second(batch: usize, mut step: impl FnMut()) -> f64 {
    step();
    let (mut iterations, start) = (0, Instant::now());
    while iterations < 3 || start.elapsed() < Duration::from_secs(5) {
        step();
        iterations += 1;
    }
    (iterations * batch) as f64 / start.elapsed().as_secs_f64()
}

fn inputs<Bk: Backend>(batch: usize, device: &Bk::Device) -> (Tensor<Bk, 4>, Tensor<Bk, 1, Int>) {
    let x = Tensor::random([batch, 3, 32, 32], Distribution::Normal(0.0, 1.0), device);
    let t = Tensor::random([batch], Distribution::Uniform(0.0, 300.0), device);
    (x, t)
}

fn bench<M>(name: &str, model: M, params: usize, batch: usize)
where
    M: NoisePredictor<AD> + AutodiffModule<AD>,
    M::InnerModule: NoisePredictor<B>,
{
    let device = Default::default();
    let eval = model.valid();
    let (x, t) = inputs::<B>(batch, &device);
    let forward = images_per_second(batch, || {
        let _ = eval.predict(x.clone(), t.clone()).into_data();
    });
    let (x, t) = inputs::<AD>(batch, &device);
    let train = images_per_second(batch, || {
        let loss = model.predict(x.clone(), t.clone()).abs().mean();
        let _ = loss.backward();
    });
    println!("{name:<28} {params:>11} {batch:>6} {forward:>12.2} {train:>16.2}");
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let device = Default::default();
    println!(
        "burn-ndarray, 32x32 RGB, threads: rayon default ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<28} {:>11} {:>6} {:>12} {:>16}",
        "model", "params", "batch", "forward img/s", "fwd+bwd img/s"
    );
    let cases: Vec<(&str, usize)> = vec![
        ("simple-unet-16-128", 16),
        ("simple-unet-seed", 4),
        ("ddpm-unet-small", 16),
        ("ddpm-unet-paper", 2),
    ];
    for (name, batch) in cases {
        if !name.contains(&filter) {
            continue;
        }
        match name {
            "simple-unet-16-128" => {
                let model = SimpleUnetConfig::new()
                    .with_channels(vec![16, 32, 64, 128])
                    .init::<AD>(&device)
                    .unwrap();
                bench(name, model.clone(), trainable_params(&model), batch);
            }
            "simple-unet-seed" => {
                let model = SimpleUnetConfig::new().init::<AD>(&device).unwrap();
                bench(name, model.clone(), trainable_params(&model), batch);
            }
            "ddpm-unet-small" => {
                let model = DdpmUnetConfig::new()
                    .with_base_channels(32)
                    .with_channel_multipliers(vec![1, 2, 2])
                    .with_num_res_blocks(1)
                    .init::<AD>(&device)
                    .unwrap();
                bench(name, model.clone(), trainable_params(&model), batch);
            }
            _ => {
                let model = DdpmUnetConfig::new().init::<AD>(&device).unwrap();
                bench(name, model.clone(), trainable_params(&model), batch);
            }
        }
    }
}
