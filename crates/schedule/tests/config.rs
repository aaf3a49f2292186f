//! Config validation, errors and serialisation.

use burn::config::Config;
use ddpm_schedule::{BetaSchedule, NoiseScheduleConfig, PredictionTarget, ScheduleError};

#[test]
fn defaults_are_the_seeds() {
    let config = NoiseScheduleConfig::new();
    assert_eq!(config.num_timesteps, 300);
    assert_eq!(config.beta_schedule, BetaSchedule::Linear);
    assert_eq!((config.beta_start, config.beta_end), (1e-4, 0.02));
    let schedule = config.init().unwrap();
    assert_eq!(schedule.betas[0], 1e-4);
    assert_eq!(schedule.betas[299], 0.02);
}

#[test]
fn zero_timesteps_is_an_error() {
    let err = NoiseScheduleConfig::new()
        .with_num_timesteps(0)
        .init()
        .unwrap_err();
    assert_eq!(err, ScheduleError::ZeroTimesteps);
    assert!(err.to_string().contains("at least 1"));
}

#[test]
fn start_not_below_end_is_an_error() {
    for (start, end) in [(0.02, 0.02), (0.02, 1e-4)] {
        for kind in [
            BetaSchedule::Linear,
            BetaSchedule::Quadratic,
            BetaSchedule::Sigmoid,
        ] {
            let err = NoiseScheduleConfig::new()
                .with_beta_schedule(kind)
                .with_beta_start(start)
                .with_beta_end(end)
                .init()
                .unwrap_err();
            assert_eq!(err, ScheduleError::BetaRangeNotIncreasing { start, end });
            assert_eq!(
                err.to_string(),
                format!("beta_start ({start}) must be smaller than beta_end ({end})")
            );
        }
    }
}

#[test]
fn betas_outside_the_unit_interval_are_errors() {
    let cases = [
        (-1e-4, 0.02, "beta_start"),
        (0.0, 0.02, "beta_start"),
        (1e-4, 1.0, "beta_end"),
        (1e-4, f64::NAN, "beta_end"),
    ];
    for (start, end, field) in cases {
        let err = NoiseScheduleConfig::new()
            .with_beta_start(start)
            .with_beta_end(end)
            .init()
            .unwrap_err();
        match err {
            ScheduleError::OutOfRange { name, .. } => assert_eq!(name, field),
            other => panic!("({start}, {end}) gave {other:?}"),
        }
    }
    let err = NoiseScheduleConfig::new()
        .with_beta_schedule(BetaSchedule::Cosine)
        .with_max_beta(1.5)
        .init()
        .unwrap_err();
    assert_eq!(err.to_string(), "max_beta must be in (0, 1), got 1.5");
    let err = NoiseScheduleConfig::new()
        .with_beta_schedule(BetaSchedule::Cosine)
        .with_cosine_s(-0.1)
        .init()
        .unwrap_err();
    assert!(matches!(
        err,
        ScheduleError::OutOfRange {
            name: "cosine_s",
            ..
        }
    ));
}

#[test]
fn config_round_trips_through_json() {
    let config = NoiseScheduleConfig::new()
        .with_beta_schedule(BetaSchedule::Cosine)
        .with_num_timesteps(1000);
    let json = burn::config::config_to_json(&config);
    assert!(json.contains("\"beta_schedule\": \"cosine\""), "{json}");
    let back = NoiseScheduleConfig::load_binary(json.as_bytes()).unwrap();
    assert_eq!(back, config);
    assert_eq!(back.init().unwrap(), config.init().unwrap());
}

#[test]
fn names_parse_ours_and_diffusers() {
    for (name, kind) in [
        ("linear", BetaSchedule::Linear),
        ("quadratic", BetaSchedule::Quadratic),
        ("scaled_linear", BetaSchedule::Quadratic),
        ("cosine", BetaSchedule::Cosine),
        ("squaredcos_cap_v2", BetaSchedule::Cosine),
        ("sigmoid", BetaSchedule::Sigmoid),
    ] {
        assert_eq!(name.parse::<BetaSchedule>().unwrap(), kind);
    }
    let err = "exponential".parse::<BetaSchedule>().unwrap_err();
    assert!(err.contains("exponential") && err.contains("linear, quadratic, cosine or sigmoid"));
}

#[test]
fn prediction_targets_use_diffusers_names() {
    for (target, name) in [
        (PredictionTarget::Noise, "\"epsilon\""),
        (PredictionTarget::Sample, "\"sample\""),
        (PredictionTarget::Velocity, "\"v_prediction\""),
    ] {
        assert_eq!(serde_json::to_string(&target).unwrap(), name);
        assert_eq!(
            serde_json::from_str::<PredictionTarget>(name).unwrap(),
            target
        );
    }
}
