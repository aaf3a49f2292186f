//! Models out of checkpoints, and checkpoints from imported weights.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use ddpm_unet::Denoiser;

use crate::checkpoint::{
    CheckpointState, Save, checkpoint_error, load_record, read_state, recorder, resolve_checkpoint,
};
use crate::{TrainConfig, TrainError};

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
    let save = Save {
        run_dir,
        state,
        keep_last: 1,
        crash_before_rename: false,
    };
    save.commit(|dir| {
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
