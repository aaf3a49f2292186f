//! Models out of checkpoints, and checkpoints from imported weights.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use ddpm_unet::{Denoiser, DenoiserConfig, SimpleUnetConfig, trainable_params};

use crate::checkpoint::{
    CheckpointState, Save, checkpoint_error, load_record, read_state, recorder, resolve_checkpoint,
};
use crate::{Preset, TrainConfig, TrainError};

/// A model loaded for sampling.
#[derive(Debug)]
pub struct LoadedModel<B: Backend> {
    /// The weights (the EMA copy when asked for and present).
    pub model: Denoiser<B>,
    /// The checkpoint's state and recipe.
    pub state: CheckpointState,
    /// The checkpoint folder read.
    pub checkpoint: PathBuf,
    /// Whether `model` holds the EMA weights.
    pub ema: bool,
}

impl<B: Backend> std::fmt::Display for LoadedModel<B> {
    /// What the checkpoint holds, a line per item: step, loss, model, parameters, images,
    /// schedule, EMA.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (state, config) = (&self.state, &self.state.config);
        let loss = state.loss.map_or("- (imported weights)".into(), |l| {
            format!("{l:.5} (smoothed)")
        });
        writeln!(f, "checkpoint   {}", self.checkpoint.display())?;
        writeln!(f, "step         {} (epoch {})", state.step, state.epoch)?;
        writeln!(f, "loss         {loss}")?;
        writeln!(f, "model        {}", config.model)?;
        writeln!(f, "parameters   {}", trainable_params(&self.model))?;
        let channels = config.model.image_channels();
        writeln!(
            f,
            "images       {0}x{0}, {channels} channel(s)",
            config.image_size
        )?;
        writeln!(
            f,
            "schedule     {} betas, T = {}, predicting {:?}, {:?} loss",
            config.schedule.beta_schedule,
            config.schedule.num_timesteps,
            config.prediction,
            config.loss
        )?;
        match config.ema {
            Some(ema) if self.checkpoint.join("ema.mpk").is_file() => {
                writeln!(f, "EMA          yes (decay {})", ema.decay)
            }
            Some(ema) => writeln!(f, "EMA          yes (decay {}), weights missing", ema.decay),
            None => writeln!(f, "EMA          no"),
        }
    }
}

/// Loads the model of a checkpoint (or a run folder's latest): its EMA weights when `prefer_ema`
/// and the run kept them, its raw weights otherwise.
pub fn load_model<B: Backend>(
    path: &Path,
    prefer_ema: bool,
    device: &B::Device,
) -> Result<LoadedModel<B>, TrainError> {
    let checkpoint = resolve_checkpoint(path)?;
    let state = read_state(&checkpoint)?;
    let model = state
        .config
        .model
        .init::<B>(device)
        .map_err(|e| checkpoint_error(&checkpoint, e))?;
    let ema = prefer_ema && checkpoint.join("ema.mpk").is_file();
    let file = if ema { "ema.mpk" } else { "model.mpk" };
    let model = model.load_record(load_record::<B, _>(&checkpoint, file, device)?);
    Ok(LoadedModel {
        model,
        state,
        checkpoint,
        ema,
    })
}

/// Writes `model` as the step-0 checkpoint of a run in `run_dir` with `config` as its recipe
/// (EMA initialised to the same weights when the recipe has EMA). It has no optimiser state: a
/// run resumed from it starts Adam afresh. Returns the checkpoint folder.
pub fn save_model_checkpoint<B: Backend>(
    run_dir: &Path,
    config: TrainConfig,
    model: &Denoiser<B>,
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(run_dir).map_err(|e| checkpoint_error(run_dir, e))?;
    let has_ema = config.ema.is_some();
    let state = CheckpointState {
        step: 0,
        epoch: 0,
        loss: None,
        rng_seed: config.seed,
        config,
    };
    Save::new(run_dir, state, 1).commit(|dir| {
        let record = |file: &str| {
            Recorder::<B>::record(&recorder(), model.clone().into_record(), dir.join(file))
                .map_err(|e| checkpoint_error(&dir.join(file), e))
        };
        record("model.mpk")?;
        if has_ema {
            record("ema.mpk")?;
        }
        Ok(())
    })
}

/// A checkpoint made from the seed's PyTorch weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The checkpoint folder written.
    pub checkpoint: PathBuf,
    /// The model's shape, read from the weights.
    pub config: SimpleUnetConfig,
    /// Its trainable parameters.
    pub parameters: usize,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (channels, parameters) = (&self.config.channels, self.parameters);
        write!(
            f,
            "SimpleUnet, channels {channels:?}, {parameters} parameters"
        )
    }
}

/// Imports the seed's PyTorch checkpoint (`<epoch>unet-best.pth`, a SimpleUnet state_dict whose
/// shape is read from it) as the step-0 checkpoint of a new run in `run_dir`, with the seed's
/// recipe at `image_size`. Refuses a folder that already holds a run.
pub fn import_seed_checkpoint<B: Backend>(
    pth: &Path,
    run_dir: &Path,
    image_size: usize,
    device: &B::Device,
) -> Result<Imported, TrainError> {
    if run_dir.join("run.json").exists() {
        return Err(checkpoint_error(
            run_dir,
            "already holds a run; choose another folder",
        ));
    }
    let weights = |e: ddpm_unet::WeightsError| checkpoint_error(pth, e);
    let config = SimpleUnetConfig::from_seed_checkpoint(pth).map_err(weights)?;
    let model = config
        .init::<B>(device)
        .map_err(|e| TrainError::Config(e.to_string()))?
        .load_seed_checkpoint(pth)
        .map_err(weights)?;
    let recipe = TrainConfig {
        model: DenoiserConfig::SimpleUnet(config.clone()),
        image_size,
        ..TrainConfig::preset(Preset::Seed)
    };
    recipe.validate()?;
    let parameters = trainable_params(&model);
    let checkpoint = save_model_checkpoint(run_dir, recipe, &Denoiser::SimpleUnet(model))?;
    Ok(Imported {
        checkpoint,
        config,
        parameters,
    })
}
