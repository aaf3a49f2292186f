//! Weight files: the seed's PyTorch checkpoints, and safetensors in the seed's key layout.
//!
//! Burn and PyTorch name and lay out a few tensors differently (Linear weights are transposed,
//! BatchNorm's `weight`/`bias` are `gamma`/`beta`, and the seed's time MLP is `time_mlp.1` inside
//! an `nn.Sequential`); burn-store's adapters and a key remapping bridge the two, so a file
//! written here loads into the seed's PyTorch module and the other way round.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};

use crate::{SimpleUnet, WeightsError};

/// The seed's `time_mlp` is `Sequential(SinusoidalPositionEmbeddings, Linear, ReLU)`.
const SEED_TIME_MLP: &str = r"^time_mlp\.1\.";
const OUR_TIME_MLP: &str = r"^time_mlp\.";

impl<B: Backend> SimpleUnet<B> {
    /// Loads a PyTorch `state_dict` of the seed's SimpleUnet (`torch.save(model.state_dict())`,
    /// e.g. `checkpoint/<epoch>unet-best.pth`) into this model, whose config must match the
    /// checkpoint's. BatchNorm running statistics are loaded; `num_batches_tracked` is ignored.
    pub fn load_seed_checkpoint(mut self, path: &Path) -> Result<Self, WeightsError> {
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .with_key_remapping(SEED_TIME_MLP, "time_mlp.")
            .allow_partial(true)
            .validate(false);
        let result = self
            .load_from(&mut store)
            .map_err(|e| read_error(path, e))?;
        check_applied(result, path)?;
        Ok(self)
    }

    /// Writes the weights as safetensors with the seed's PyTorch key names and layouts, so
    /// `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` loads them (only
    /// `num_batches_tracked` is absent). The write is atomic: temporary file, then rename.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), WeightsError> {
        let fail = |reason: String| WeightsError::Write {
            path: path.to_path_buf(),
            reason,
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| fail(format!("cannot create a file in {}: {e}", dir.display())))?;
        let mut store = SafetensorsStore::from_file(temp.path())
            .overwrite(true)
            .skip_enum_variants(true)
            .with_to_adapter(BurnToPyTorchAdapter)
            .with_key_remapping(OUR_TIME_MLP, "time_mlp.1.");
        self.save_into(&mut store)
            .map_err(|e| fail(e.to_string()))?;
        temp.persist(path).map_err(|e| fail(e.error.to_string()))?;
        Ok(())
    }

    /// Loads weights written by [`save_safetensors`](Self::save_safetensors) (or by PyTorch's
    /// `safetensors.torch.save_file(model.state_dict())` for the seed's module).
    pub fn load_safetensors(mut self, path: &Path) -> Result<Self, WeightsError> {
        if !path.is_file() {
            return Err(read_error(path, "no such file"));
        }
        let mut store = SafetensorsStore::from_file(path)
            .skip_enum_variants(true)
            .with_from_adapter(PyTorchToBurnAdapter)
            .with_key_remapping(SEED_TIME_MLP, "time_mlp.")
            .allow_partial(true)
            .validate(false);
        let result = self
            .load_from(&mut store)
            .map_err(|e| read_error(path, e))?;
        check_applied(result, path)?;
        Ok(self)
    }
}

fn read_error(path: &Path, reason: impl ToString) -> WeightsError {
    WeightsError::Read {
        path: path.to_path_buf(),
        reason: reason.to_string().trim().to_string(),
    }
}

/// Turns burn-store's report into the first problem, named in the file's own key names.
fn check_applied(result: ApplyResult, path: &Path) -> Result<(), WeightsError> {
    let path: PathBuf = path.to_path_buf();
    if let Some(error) = result.errors.first() {
        let detail = match error {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => format!(
                "tensor '{}' has shape {:?} in the file but {:?} in the model \
                 (a checkpoint for another model config?)",
                seed_key(key),
                found.as_slice(),
                expected.as_slice()
            ),
            other => other.to_string(),
        };
        return Err(WeightsError::Mismatch { path, detail });
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(WeightsError::MissingKey {
            path,
            key: seed_key(key),
        });
    }
    // burn-store lists a BatchNorm `weight`/`bias` as unused even when its adapter applied it
    // as `gamma`/`beta`; only a key applied under neither name is really unexpected.
    let applied_as_renamed = |key: &str| match key.rsplit_once('.') {
        Some((module, "weight")) => result.applied.contains(&format!("{module}.gamma")),
        Some((module, "bias")) => result.applied.contains(&format!("{module}.beta")),
        _ => false,
    };
    if let Some(key) = result
        .unused
        .iter()
        .find(|key| !key.ends_with(".num_batches_tracked") && !applied_as_renamed(key))
    {
        return Err(WeightsError::UnexpectedKey {
            path,
            key: seed_key(key),
        });
    }
    Ok(())
}

/// A burn module path as the seed's state_dict names it.
fn seed_key(burn_path: &str) -> String {
    let key = match burn_path.strip_prefix("time_mlp.") {
        Some(rest) => format!("time_mlp.1.{rest}"),
        None => burn_path.to_string(),
    };
    let key = key.replace(".Down.", ".").replace(".Up.", ".");
    match key.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => key,
    }
}
