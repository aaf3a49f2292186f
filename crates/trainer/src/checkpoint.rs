//! Checkpoints: one folder per save, written whole or not at all.
//!
//! ```text
//! checkpoint/<run>/
//!   run.json              latest and best checkpoint (rewritten atomically)
//!   step-000250/          model.mpk, ema.mpk, optimizer.mpk, state.json
//!   metrics.jsonl
//!   samples/step-000250.png
//! ```
//!
//! A checkpoint is written into a hidden temporary folder beside its final name, synced, then
//! renamed: a crash leaves either no `step-N` folder or a complete one.

use std::path::{Path, PathBuf};

use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use serde::{Deserialize, Serialize};

use crate::{TrainConfig, TrainError};

/// The recorder for every file of a checkpoint: named MessagePack, full precision (bit-exact).
pub(crate) fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

/// `state.json`: where the run was, and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done.
    pub step: u64,
    /// Epoch the next step belongs to.
    pub epoch: u64,
    /// Smoothed training loss when saved (None for imported weights).
    pub loss: Option<f64>,
    /// The random state: every step reseeds the backend from `(seed, step)`, so the seed and the
    /// step are all of it.
    pub rng_seed: u64,
    /// The full recipe.
    pub config: TrainConfig,
}

/// `run.json`: the newest and the best checkpoint of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunIndex {
    /// Folder name of the newest checkpoint.
    pub latest: Option<String>,
    /// Folder name and smoothed loss of the lowest-loss checkpoint.
    pub best: Option<(String, f64)>,
    /// Every checkpoint still on disk, oldest first.
    pub kept: Vec<String>,
}

impl RunIndex {
    /// Reads `run.json` of `run_dir` (empty when there is none yet).
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let path = run_dir.join("run.json");
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| checkpoint_error(&path, e))?;
        serde_json::from_str(&text).map_err(|e| checkpoint_error(&path, e))
    }

    fn write(&self, run_dir: &Path) -> Result<(), TrainError> {
        let json = serde_json::to_string_pretty(self).expect("serialisable");
        write_atomically(&run_dir.join("run.json"), json.as_bytes())
    }
}

pub(crate) fn checkpoint_error(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes a small file through a temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| checkpoint_error(path, e))?;
    std::io::Write::write_all(&mut temp, bytes).map_err(|e| checkpoint_error(path, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| checkpoint_error(path, e))?;
    temp.persist(path)
        .map_err(|e| checkpoint_error(path, e.error))?;
    Ok(())
}

/// The folder name of the checkpoint after `step` steps.
pub fn checkpoint_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// What a save writes: records made by the caller into the staging folder.
pub(crate) struct Save<'a> {
    run_dir: &'a Path,
    state: CheckpointState,
    keep_last: usize,
    /// About how many bytes the records take (0: unknown).
    needed: u64,
    /// Stops after the files are written and before the rename, leaving the staging folder as a
    /// killed process would (the tests of crash recovery; no such switch outside them).
    #[cfg(test)]
    crash_before_rename: bool,
}

impl<'a> Save<'a> {
    /// A checkpoint of `state` in `run_dir`, keeping the newest `keep_last` and the best.
    pub fn new(run_dir: &'a Path, state: CheckpointState, keep_last: usize) -> Self {
        Self {
            run_dir,
            state,
            keep_last,
            needed: 0,
            #[cfg(test)]
            crash_before_rename: false,
        }
    }

    /// With the records' size, so that a filesystem without room for them is reported as such,
    /// before anything is written.
    pub fn needing(mut self, bytes: u64) -> Self {
        self.needed = bytes;
        self
    }

    /// This save, failing as a killed process would after writing and before the rename.
    #[cfg(test)]
    pub fn crashing_before_rename(mut self, crash: bool) -> Self {
        self.crash_before_rename = crash;
        self
    }

    /// Stages a checkpoint with `write_records(staging_dir)`, then renames it into place, updates
    /// `run.json` and prunes old checkpoints (never the best). Returns the checkpoint's folder.
    pub fn commit(
        self,
        write_records: impl FnOnce(&Path) -> Result<(), TrainError>,
    ) -> Result<PathBuf, TrainError> {
        let name = checkpoint_name(self.state.step);
        let target = self.run_dir.join(&name);
        if let Some(reason) = short_of_space(self.run_dir, self.needed) {
            return Err(checkpoint_error(&target, reason));
        }
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempdir_in(self.run_dir)
            .map_err(|e| checkpoint_error(&target, e))?;
        let written = write_records(staging.path()).and_then(|()| {
            let state = serde_json::to_string_pretty(&self.state).expect("serialisable");
            std::fs::write(staging.path().join("state.json"), state)
                .map_err(|e| checkpoint_error(&target, e))?;
            for entry in
                std::fs::read_dir(staging.path()).map_err(|e| checkpoint_error(&target, e))?
            {
                let file =
                    std::fs::File::open(entry.map_err(|e| checkpoint_error(&target, e))?.path());
                file.and_then(|f| f.sync_all())
                    .map_err(|e| checkpoint_error(&target, e))?;
            }
            Ok(())
        });
        if let Err(error) = written {
            // The half-written folder goes first, then the free space tells what failed (the
            // recorders' errors do not say).
            drop(staging);
            return Err(match short_of_space(self.run_dir, self.needed) {
                Some(reason) => checkpoint_error(&target, reason),
                None => error,
            });
        }
        #[cfg(test)]
        if self.crash_before_rename {
            // A killed process leaves its staging folder behind.
            let _ = staging.keep();
            return Err(checkpoint_error(
                &target,
                "injected failure before the rename",
            ));
        }
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| checkpoint_error(&target, e))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, &target).map_err(|e| checkpoint_error(&target, e))?;

        let mut index = RunIndex::read(self.run_dir)?;
        index.latest = Some(name.clone());
        index.kept.retain(|kept| kept != &name);
        index.kept.push(name.clone());
        if let Some(loss) = self.state.loss
            && index.best.as_ref().is_none_or(|(_, best)| loss < *best)
        {
            index.best = Some((name, loss));
        }
        // Keep the newest `keep_last` and the best; delete the rest.
        let best = index.best.as_ref().map(|(best, _)| best.clone());
        let newest = index.kept.len().saturating_sub(self.keep_last.max(1));
        let mut kept = Vec::with_capacity(index.kept.len());
        for (i, name) in index.kept.drain(..).enumerate() {
            if i >= newest || Some(&name) == best.as_ref() {
                kept.push(name);
            } else {
                let _ = std::fs::remove_dir_all(self.run_dir.join(&name));
            }
        }
        index.kept = kept;
        index.write(self.run_dir)?;
        Ok(target)
    }
}

/// Why `dir`'s filesystem cannot take `needed` more bytes, if it cannot.
fn short_of_space(dir: &Path, needed: u64) -> Option<String> {
    let available = fs4::available_space(dir).ok()?;
    let mb = |bytes: u64| bytes.div_ceil(1_000_000);
    (available < needed).then(|| {
        format!(
            "no space left on device: {} has {} MB free and the checkpoint needs about {} MB",
            dir.display(),
            mb(available),
            mb(needed)
        )
    })
}

/// Removes the staging folders (`.step-N.*`) that a crash left half written in `run_dir`, and
/// returns their names: a checkpoint is staged under such a name and renamed only when complete,
/// so no such folder is ever needed again.
pub fn remove_staging_leftovers(run_dir: &Path) -> Result<Vec<String>, TrainError> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| checkpoint_error(run_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".step-") && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| checkpoint_error(&entry.path(), e))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Finds the checkpoint folder `path` names: a checkpoint folder itself, or a run folder (its
/// latest checkpoint).
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf, TrainError> {
    if path.join("state.json").is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(checkpoint_error(path, "no such checkpoint or run folder"));
    }
    match RunIndex::read(path)?.latest {
        Some(latest) => Ok(path.join(latest)),
        None => Err(checkpoint_error(
            path,
            "this run folder has no checkpoint yet",
        )),
    }
}

/// Reads a checkpoint's `state.json`.
pub fn read_state(checkpoint: &Path) -> Result<CheckpointState, TrainError> {
    let path = checkpoint.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| checkpoint_error(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(&path, format!("not a checkpoint state: {e}")))
}

/// Loads one record file of a checkpoint.
pub(crate) fn load_record<B: burn::tensor::backend::Backend, R: burn::record::Record<B>>(
    checkpoint: &Path,
    file: &str,
    device: &B::Device,
) -> Result<R, TrainError> {
    let path = checkpoint.join(file);
    Recorder::<B>::load(&recorder(), path.clone(), device).map_err(|e| checkpoint_error(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Preset, TrainConfig};

    /// A filesystem without room for the records is named as such, and nothing is written.
    #[test]
    fn a_save_without_room_says_so_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = CheckpointState {
            step: 3,
            epoch: 0,
            loss: None,
            rng_seed: 0,
            config: TrainConfig::preset(Preset::CpuDemo),
        };
        let mut wrote = false;
        let err = Save::new(dir.path(), state, 1)
            .needing(u64::MAX / 2)
            .commit(|_| {
                wrote = true;
                Ok(())
            })
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("no space left on device")
                && message.contains(&dir.path().display().to_string())
                && message.contains("MB free"),
            "{message}"
        );
        assert!(!wrote, "no record was started");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
