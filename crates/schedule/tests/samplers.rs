//! DDPM and DDIM samplers against diffusers' DDPMScheduler / DDIMScheduler (fixture made by
//! `xtask/scripts/sampler_fixture.py`), step by step and over whole trajectories.

use std::f64::consts::PI;

use burn::tensor::{Tensor, TensorData};
use burn_ndarray::NdArray;
use ddpm_schedule::{
    BetaSchedule, DdimConfig, DdpmConfig, NoiseSchedule, NoiseScheduleConfig, PredictionTarget,
    Sampler, ScheduleError, TimestepSpacing, VarianceKind, sample_from,
};
use serde_json::Value;

type B = NdArray<f32>;

/// diffusers' results, float32 like ours: agreement to 1e-5 (relative above magnitude 1).
const TOLERANCE: f32 = 1e-5;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/samplers.json")).unwrap()
}

fn from_json<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap()
}

fn tensor(values: &Value, shape: [usize; 4]) -> Tensor<B, 4> {
    let values: Vec<f32> = from_json(values);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// The fixture's analytic model: 0.5·x + 0.3·sin(2x + π t / T).
fn dummy_model(x: Tensor<B, 4>, t: usize, total: usize) -> Tensor<B, 4> {
    (x.clone() * 2.0 + PI * t as f64 / total as f64).sin() * 0.3 + x * 0.5
}

fn schedule(case: &Value) -> NoiseSchedule {
    let kind = match case["beta_schedule"].as_str().unwrap() {
        "linear" => BetaSchedule::Linear,
        "cosine" => BetaSchedule::Cosine,
        other => panic!("fixture schedule {other}"),
    };
    NoiseScheduleConfig::new()
        .with_num_timesteps(from_json(&case["num_timesteps"]))
        .with_beta_schedule(kind)
        .with_beta_start(from_json(&case["beta_start"]))
        .with_beta_end(from_json(&case["beta_end"]))
        .init()
        .unwrap()
}

fn sampler(case: &Value) -> Box<dyn Sampler<B>> {
    let schedule = schedule(case);
    let prediction: PredictionTarget = from_json(&case["prediction"]);
    let clip = case["clip_sample"].as_bool().unwrap();
    if case["sampler"] == "ddpm" {
        let variance: VarianceKind = from_json(&case["variance"]);
        let config = DdpmConfig::new()
            .with_variance(variance)
            .with_clip_sample(clip);
        Box::new(config.init(&schedule, prediction))
    } else {
        let config = DdimConfig::new()
            .with_num_inference_steps(from_json(&case["num_inference_steps"]))
            .with_eta(from_json(&case["eta"]))
            .with_timestep_spacing(from_json(&case["timestep_spacing"]))
            .with_set_alpha_to_one(from_json(&case["set_alpha_to_one"]))
            .with_steps_offset(from_json(&case["steps_offset"]))
            .with_clip_sample(clip)
            .with_use_clipped_model_output(case["use_clipped_model_output"] == true);
        Box::new(config.init(&schedule, prediction).unwrap())
    }
}

fn describe(case: &Value) -> String {
    let mut case = case.clone();
    let map = case.as_object_mut().unwrap();
    for bulky in ["states", "noises", "timesteps"] {
        map.remove(bulky);
    }
    serde_json::to_string(map).unwrap()
}

/// The largest error against `expected`, relative above magnitude 1.
fn max_error(ours: Tensor<B, 4>, expected: &Value) -> f32 {
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    let expected: Vec<f32> = from_json(expected);
    ours.iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn every_step_matches_diffusers() {
    let fixture = fixture();
    let shape: [usize; 4] = from_json(&fixture["shape"]);
    for case in fixture["cases"].as_array().unwrap() {
        let sampler = sampler(case);
        let total: usize = from_json(&case["num_timesteps"]);
        let expected_steps: Vec<usize> = from_json(&case["timesteps"]);
        assert_eq!(sampler.timesteps(), expected_steps, "{}", describe(case));
        let states = case["states"].as_array().unwrap();
        let noises = case["noises"].as_array().unwrap();
        for (i, &t) in sampler.timesteps().iter().enumerate() {
            let x_t = tensor(&states[i], shape);
            let noise = (!noises[i].is_null()).then(|| tensor(&noises[i], shape));
            // diffusers draws noise for every DDIM step when eta > 0, even where σ is 0.
            if sampler.is_stochastic(t) {
                assert!(
                    noise.is_some(),
                    "step {i} (t = {t}) adds noise in ours only"
                );
            }
            let output = dummy_model(x_t.clone(), t, total);
            let next = sampler.step_with_noise(output, t, x_t, noise);
            let error = max_error(next, &states[i + 1]);
            assert!(
                error <= TOLERANCE,
                "step {i} (t = {t}) differs from diffusers by {error:e}: {}",
                describe(case)
            );
        }
    }
}

#[test]
fn whole_trajectories_match_diffusers() {
    let fixture = fixture();
    let shape: [usize; 4] = from_json(&fixture["shape"]);
    for case in fixture["cases"].as_array().unwrap() {
        let sampler = sampler(case);
        let total: usize = from_json(&case["num_timesteps"]);
        let states = case["states"].as_array().unwrap();
        let noises = case["noises"].as_array().unwrap();
        // Our own loop, each step fed the noise diffusers drew.
        let mut x = tensor(&states[0], shape);
        for (i, &t) in sampler.timesteps().iter().enumerate() {
            let noise = (!noises[i].is_null()).then(|| tensor(&noises[i], shape));
            x = sampler.step_with_noise(dummy_model(x.clone(), t, total), t, x, noise);
        }
        let error = max_error(x, states.last().unwrap());
        assert!(
            error <= 1e-4,
            "final sample differs from diffusers by {error:e}: {}",
            describe(case)
        );
    }
}

#[test]
fn ddim_timesteps_match_diffusers_set_timesteps() {
    let fixture = fixture();
    for entry in fixture["timestep_grid"].as_array().unwrap() {
        let schedule = NoiseScheduleConfig::new()
            .with_num_timesteps(from_json(&entry["num_timesteps"]))
            .init()
            .unwrap();
        let spacing: TimestepSpacing = from_json(&entry["timestep_spacing"]);
        let config = DdimConfig::new()
            .with_num_inference_steps(from_json(&entry["steps"]))
            .with_timestep_spacing(spacing)
            .with_steps_offset(from_json(&entry["steps_offset"]));
        let ours = config.init(&schedule, PredictionTarget::Noise).unwrap();
        let theirs: Vec<i64> = from_json(&entry["timesteps"]);
        // diffusers' trailing spacing can return one step too many, the extra one being -1 (a
        // float arange overshoot, e.g. T = 300, 7 steps); we give the n valid ones.
        let expected: Vec<usize> = theirs
            .iter()
            .filter_map(|&t| usize::try_from(t).ok())
            .collect();
        assert_eq!(Sampler::<B>::timesteps(&ours), expected, "{entry}");
        assert_eq!(
            expected.len(),
            from_json::<usize>(&entry["steps"]),
            "{entry}"
        );
    }
}

#[test]
fn deterministic_ddim_needs_no_noise_and_repeats_exactly() {
    let schedule = NoiseScheduleConfig::new().init().unwrap();
    let sampler = DdimConfig::new()
        .with_num_inference_steps(25)
        .init(&schedule, PredictionTarget::Noise)
        .unwrap();
    let device = Default::default();
    let x_t = Tensor::<B, 4>::from_data(
        TensorData::new(
            (0..32).map(|i| (i as f32 * 0.37).sin()).collect(),
            [2, 1, 4, 4],
        ),
        &device,
    );
    let model = |x: Tensor<B, 4>, _t| x * 0.3;
    let once = sample_from(&sampler, model, x_t.clone(), 5);
    let again = sample_from(&sampler, model, x_t.clone(), 5);
    assert_eq!(
        once.len(),
        6,
        "5 snapshots (every 5th of 25 steps) and the result"
    );
    once[0]
        .clone()
        .into_data()
        .assert_eq(&x_t.into_data(), true);
    for (a, b) in once.into_iter().zip(again) {
        a.into_data().assert_eq(&b.into_data(), true);
    }
}

#[test]
fn ddpm_visits_every_timestep_and_adds_no_noise_at_zero() {
    let schedule = NoiseScheduleConfig::new()
        .with_num_timesteps(7)
        .init()
        .unwrap();
    let sampler = DdpmConfig::new().init(&schedule, PredictionTarget::Noise);
    assert_eq!(Sampler::<B>::timesteps(&sampler), [6, 5, 4, 3, 2, 1, 0]);
    assert!(Sampler::<B>::is_stochastic(&sampler, 1));
    assert!(!Sampler::<B>::is_stochastic(&sampler, 0));
}

#[test]
fn bad_ddim_settings_are_errors() {
    let schedule = NoiseScheduleConfig::new().init().unwrap();
    let init = |config: DdimConfig| config.init(&schedule, PredictionTarget::Noise).err();
    assert_eq!(
        init(DdimConfig::new().with_num_inference_steps(0)),
        Some(ScheduleError::InferenceSteps {
            steps: 0,
            total: 300
        })
    );
    assert_eq!(
        init(DdimConfig::new().with_num_inference_steps(301)),
        Some(ScheduleError::InferenceSteps {
            steps: 301,
            total: 300
        })
    );
    assert!(matches!(
        init(DdimConfig::new().with_eta(1.5)),
        Some(ScheduleError::OutOfRange { name: "eta", .. })
    ));
    assert_eq!(
        init(
            DdimConfig::new()
                .with_num_inference_steps(300)
                .with_steps_offset(1)
        ),
        Some(ScheduleError::TimestepOutOfRange { t: 300, total: 300 })
    );
}
