//! The forward process and target conversions on the ndarray backend.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use burn_ndarray::NdArray;
use ddpm_schedule::{BetaSchedule, NoiseScheduleConfig, PredictionTarget};

type B = NdArray<f32>;

/// burn-ndarray's random generator is global to the process, and the test harness runs tests on
/// parallel threads: tests that seed it take turns.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive_rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn values<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().unwrap()
}

fn timesteps(t: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(t.to_vec(), [t.len()]), &Default::default())
}

/// A deterministic non-constant x0 in [-1, 1]: a ramp over the pixels, different per sample.
fn ramp(n: usize, pixels: usize) -> Vec<f32> {
    (0..n * pixels)
        .map(|i| ((i % pixels) as f32 / pixels as f32) * 2.0 - 1.0 + 0.1 * (i / pixels) as f32)
        .map(|v| v.clamp(-1.0, 1.0))
        .collect()
}

#[test]
fn q_sample_with_noise_is_the_closed_form() {
    let _rng = exclusive_rng();
    let device = Default::default();
    let schedule = NoiseScheduleConfig::new().init().unwrap();
    let forward = schedule.forward_process::<B>(&device);
    let (n, pixels) = (4, 3 * 5 * 5);
    let x0 = ramp(n, pixels);
    let noise: Vec<f32> = (0..n * pixels)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let t = [0i64, 17, 150, 299];
    let x_t = forward.q_sample_with_noise(
        Tensor::<B, 4>::from_data(TensorData::new(x0.clone(), [n, 3, 5, 5]), &device),
        timesteps(&t),
        Tensor::<B, 4>::from_data(TensorData::new(noise.clone(), [n, 3, 5, 5]), &device),
    );
    for (i, got) in values(x_t).into_iter().enumerate() {
        let step = t[i / pixels] as usize;
        let want = schedule.sqrt_alphas_cumprod[step] * x0[i] as f64
            + schedule.sqrt_one_minus_alphas_cumprod[step] * noise[i] as f64;
        assert!(
            (got as f64 - want).abs() < 1e-6,
            "element {i}: {got} vs {want}"
        );
    }
}

#[test]
fn q_sample_statistics_match_the_marginal() {
    let _rng = exclusive_rng();
    let device = Default::default();
    B::seed(&device, 7);
    let schedule = NoiseScheduleConfig::new()
        .with_beta_schedule(BetaSchedule::Cosine)
        .with_num_timesteps(1000)
        .init()
        .unwrap();
    let forward = schedule.forward_process::<B>(&device);
    let (n, pixels) = (5, 128 * 128);
    let x0 = ramp(n, pixels);
    let t = [0i64, 100, 400, 800, 999];
    let (x_t, noise) = forward.q_sample(
        Tensor::<B, 3>::from_data(TensorData::new(x0.clone(), [n, 128, 128]), &device),
        timesteps(&t),
    );
    let (x_t, noise) = (values(x_t), values(noise));
    for (sample, &step) in t.iter().enumerate() {
        let range = sample * pixels..(sample + 1) * pixels;
        let (signal, noise_scale) = (
            schedule.sqrt_alphas_cumprod[step as usize],
            schedule.sqrt_one_minus_alphas_cumprod[step as usize],
        );
        // The residual after removing the signal is N(0, 1 - alpha_bar): check mean and variance
        // within about 5 standard errors of 16384 draws.
        let residual: Vec<f64> = range
            .clone()
            .map(|i| x_t[i] as f64 - signal * x0[i] as f64)
            .collect();
        let mean = residual.iter().sum::<f64>() / pixels as f64;
        let var = residual.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / pixels as f64;
        let expected_var = noise_scale * noise_scale;
        assert!(
            mean.abs() < 5.0 * noise_scale / (pixels as f64).sqrt(),
            "t={step}: mean {mean}"
        );
        assert!(
            (var / expected_var - 1.0).abs() < 0.06,
            "t={step}: var {var} vs {expected_var}"
        );
        // And the returned noise is the one that was used.
        for i in range.step_by(97) {
            let rebuilt = signal * x0[i] as f64 + noise_scale * noise[i] as f64;
            assert!((rebuilt - x_t[i] as f64).abs() < 1e-5);
        }
    }
}

#[test]
fn same_seed_same_noise() {
    let _rng = exclusive_rng();
    let device = Default::default();
    let forward = NoiseScheduleConfig::new()
        .init()
        .unwrap()
        .forward_process::<B>(&device);
    let draw = || {
        B::seed(&device, 42);
        let x0 = Tensor::<B, 4>::zeros([2, 1, 4, 4], &device);
        values(forward.q_sample(x0, timesteps(&[3, 200])).0)
    };
    assert_eq!(draw(), draw());
}

#[test]
fn sampled_timesteps_cover_the_range() {
    let _rng = exclusive_rng();
    let device = Default::default();
    B::seed(&device, 1);
    let forward = NoiseScheduleConfig::new()
        .with_num_timesteps(10)
        .init()
        .unwrap()
        .forward_process::<B>(&device);
    let t: Vec<i64> = forward
        .sample_timesteps(2000, &device)
        .into_data()
        .to_vec()
        .unwrap();
    let mut counts = [0usize; 10];
    for step in t {
        assert!((0..10).contains(&step), "timestep {step} out of range");
        counts[step as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c > 120), "not uniform: {counts:?}");
}

#[test]
fn target_conversions_round_trip() {
    let _rng = exclusive_rng();
    let device = Default::default();
    B::seed(&device, 3);
    let schedule = NoiseScheduleConfig::new()
        .with_num_timesteps(1000)
        .init()
        .unwrap();
    let forward = schedule.forward_process::<B>(&device);
    let t = timesteps(&[0, 1, 500, 998, 999]);
    let x0 = Tensor::<B, 4>::from_data(TensorData::new(ramp(5, 48), [5, 3, 4, 4]), &device);
    let noise = x0.random_like(burn::tensor::Distribution::Normal(0.0, 1.0));
    let x_t = forward.q_sample_with_noise(x0.clone(), t.clone(), noise.clone());

    let close = |what: &str, got: Tensor<B, 4>, want: &Tensor<B, 4>| {
        for (i, (g, w)) in values(got)
            .into_iter()
            .zip(values(want.clone()))
            .enumerate()
        {
            assert!(
                (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    };
    close(
        "x0_from_noise",
        forward.x0_from_noise(x_t.clone(), noise.clone(), t.clone()),
        &x0,
    );
    close(
        "noise_from_x0",
        forward.noise_from_x0(x_t.clone(), x0.clone(), t.clone()),
        &noise,
    );
    let v = forward.velocity(x0.clone(), noise.clone(), t.clone());
    close(
        "x0_from_velocity",
        forward.x0_from_velocity(x_t.clone(), v.clone(), t.clone()),
        &x0,
    );
    close(
        "noise_from_velocity",
        forward.noise_from_velocity(x_t.clone(), v.clone(), t.clone()),
        &noise,
    );

    // v by its definition, per sample.
    let (v_values, x0_values, noise_values) =
        (values(v), values(x0.clone()), values(noise.clone()));
    for (i, &got) in v_values.iter().enumerate() {
        let step = [0, 1, 500, 998, 999][i / 48];
        let want = schedule.sqrt_alphas_cumprod[step] * noise_values[i] as f64
            - schedule.sqrt_one_minus_alphas_cumprod[step] * x0_values[i] as f64;
        assert!((got as f64 - want).abs() < 1e-5, "v[{i}]: {got} vs {want}");
    }

    for kind in [
        PredictionTarget::Noise,
        PredictionTarget::Sample,
        PredictionTarget::Velocity,
    ] {
        let output = forward.target(kind, x0.clone(), noise.clone(), t.clone());
        let (x0_hat, noise_hat) = forward.split_prediction(kind, x_t.clone(), output, t.clone());
        close(&format!("{kind:?} x0"), x0_hat, &x0);
        close(&format!("{kind:?} noise"), noise_hat, &noise);
    }
}

/// Min-SNR-γ's weights make every kind of error count as min(SNR, γ) times the same error on
/// x_0: an estimate x̂_0 = x_0 + δ, expressed as each kind of output, has its squared error
/// times the kind's weight equal to min(SNR_t, γ)·δ², on both sides of the cap.
#[test]
fn min_snr_weights_count_every_target_as_capped_snr_on_x0() {
    let device = Default::default();
    let schedule = NoiseScheduleConfig::new().init().unwrap();
    let forward = schedule.forward_process::<B>(&device);
    let steps = [0_i64, 40, 150, 299];
    let t = timesteps(&steps);
    let shape = [steps.len(), 1, 1, 2];
    let tensor = |v: &[f32]| Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), shape), &device);
    let x0 = tensor(&[0.5, -0.25, 0.75, 0.0, -1.0, 0.25, 0.1, -0.6]);
    let noise = tensor(&[1.2, -0.3, 0.4, -2.0, 0.7, 0.05, -1.1, 0.9]);
    let delta = tensor(&[0.1, -0.2, 0.05, 0.3, -0.15, 0.1, 0.2, -0.05]);
    let x_t = forward.q_sample_with_noise(x0.clone(), t.clone(), noise.clone());
    let x0_hat = x0.clone() + delta.clone();
    let noise_hat = forward.noise_from_x0(x_t.clone(), x0_hat.clone(), t.clone());
    let gamma = 5.0;
    let delta_sq: Vec<f32> = values(delta.powi_scalar(2).sum_dim(3).reshape([steps.len()]));
    let cases = [
        (PredictionTarget::Noise, noise_hat.clone(), noise.clone()),
        (PredictionTarget::Sample, x0_hat.clone(), x0.clone()),
        (
            PredictionTarget::Velocity,
            forward.velocity(x0_hat, noise_hat, t.clone()),
            forward.velocity(x0, noise, t.clone()),
        ),
    ];
    for (kind, output, target) in cases {
        let weights = values(forward.min_snr_weights(kind, t.clone(), gamma));
        let err = values(
            (output - target)
                .powi_scalar(2)
                .sum_dim(3)
                .reshape([steps.len()]),
        );
        for (i, &step) in steps.iter().enumerate() {
            let alpha_bar = schedule.alphas_cumprod[step as usize];
            let snr = alpha_bar / (1.0 - alpha_bar);
            let want = snr.min(gamma) * delta_sq[i] as f64;
            let got = weights[i] as f64 * err[i] as f64;
            assert!(
                (got - want).abs() <= 1e-3 * want,
                "{kind:?} at t = {step}: {got} vs {want}"
            );
        }
    }
    // Both sides of the cap are covered: the cleanest step is capped, the noisiest is not.
    let snr = |t: usize| schedule.alphas_cumprod[t] / (1.0 - schedule.alphas_cumprod[t]);
    assert!(snr(0) > gamma && snr(299) < gamma);
}
