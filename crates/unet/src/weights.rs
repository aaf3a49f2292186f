//! Weight files: PyTorch checkpoints in, safetensors in and out, in PyTorch's key layout.
//!
//! Burn and PyTorch name and lay out a few tensors differently (Linear weights are transposed,
//! norm layers' `weight`/`bias` are `gamma`/`beta`); burn-store's adapters bridge that. Each model
//! adds its own key remapping where its reference PyTorch module nests differently (the seed's
//! time MLP is `time_mlp.1` inside an `nn.Sequential`), so a file written here loads into the
//! reference PyTorch module and the other way round.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::{DdpmUnet, SimpleUnet, SimpleUnetConfig, WeightsError};

/// How a burn module's paths and its reference PyTorch keys differ.
#[derive(Debug, Clone, Copy)]
pub struct KeyLayout {
    /// Pairs of key prefixes (PyTorch, burn).
    pub renames: &'static [(&'static str, &'static str)],
    /// Prefixes of the file's keys the module has no tensor for, on purpose (a classifier head
    /// a feature extractor leaves out).
    pub unused: &'static [&'static str],
}

impl KeyLayout {
    /// Anchored regex remappings from PyTorch keys to burn paths.
    fn burn_remaps(self) -> impl Iterator<Item = (String, &'static str)> {
        self.renames
            .iter()
            .map(|&(torch, burn)| (anchored(torch), burn))
    }

    /// Anchored regex remappings from burn paths to PyTorch keys.
    fn torch_remaps(self) -> impl Iterator<Item = (String, &'static str)> {
        self.renames
            .iter()
            .map(|&(torch, burn)| (anchored(burn), torch))
    }
}

fn anchored(prefix: &str) -> String {
    format!("^{}", prefix.replace('.', r"\."))
}

/// The seed's `time_mlp` is `Sequential(SinusoidalPositionEmbeddings, Linear, ReLU)`.
const SEED_LAYOUT: KeyLayout = KeyLayout {
    renames: &[("time_mlp.1.", "time_mlp.")],
    unused: &[],
};

/// The DDPM U-Net's fields already carry the reference port's names.
const SAME_LAYOUT: KeyLayout = KeyLayout {
    renames: &[],
    unused: &[],
};

impl<B: Backend> SimpleUnet<B> {
    /// Loads a PyTorch `state_dict` of the seed's SimpleUnet (`torch.save(model.state_dict())`,
    /// e.g. `checkpoint/<epoch>unet-best.pth`) into this model, whose config must match the
    /// checkpoint's. BatchNorm running statistics are loaded; `num_batches_tracked` is ignored.
    pub fn load_seed_checkpoint(self, path: &Path) -> Result<Self, WeightsError> {
        load_pytorch(self, path, &SEED_LAYOUT)
    }

    /// Writes the weights as safetensors with the seed's PyTorch key names and layouts, so
    /// `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` loads them (only
    /// `num_batches_tracked` is absent). The write is atomic: temporary file, then rename.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), WeightsError> {
        save_safetensors(self, path, &SEED_LAYOUT)
    }

    /// Loads weights written by [`save_safetensors`](Self::save_safetensors), or by PyTorch's
    /// `safetensors.torch.save_file(model.state_dict())` for the seed's module.
    pub fn load_safetensors(self, path: &Path) -> Result<Self, WeightsError> {
        load_safetensors(self, path, &SEED_LAYOUT)
    }
}

impl SimpleUnetConfig {
    /// The config of the SimpleUnet a seed checkpoint holds, read from its tensor shapes:
    /// `conv0.weight` is `[c0, image_channels, 3, 3]`, `downs.i.conv1.weight` is
    /// `[c_{i+1}, c_i, 3, 3]`, `time_mlp.1.weight` is `[dim, dim]`.
    pub fn from_seed_checkpoint(path: &Path) -> Result<Self, WeightsError> {
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        let snapshots = store.get_all_snapshots().map_err(|e| read_error(path, e))?;
        let shape = |key: &str| -> Result<Vec<usize>, WeightsError> {
            snapshots
                .get(key)
                .map(|t| t.shape.as_slice().to_vec())
                .ok_or_else(|| WeightsError::MissingKey {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                })
        };
        let conv0 = shape("conv0.weight")?;
        let mut channels = vec![conv0[0]];
        while let Ok(conv1) = shape(&format!("downs.{}.conv1.weight", channels.len() - 1)) {
            channels.push(conv1[0]);
        }
        Ok(SimpleUnetConfig::new()
            .with_image_channels(conv0[1])
            .with_channels(channels)
            .with_time_embedding_dim(shape("time_mlp.1.weight")?[0]))
    }
}

impl<B: Backend> DdpmUnet<B> {
    /// Loads a PyTorch `state_dict` of the reference port of Ho et al.'s model into this model,
    /// whose config must match the checkpoint's.
    pub fn load_pytorch_checkpoint(self, path: &Path) -> Result<Self, WeightsError> {
        load_pytorch(self, path, &SAME_LAYOUT)
    }

    /// Writes the weights as safetensors in the PyTorch port's key layout (atomically).
    pub fn save_safetensors(&self, path: &Path) -> Result<(), WeightsError> {
        save_safetensors(self, path, &SAME_LAYOUT)
    }

    /// Loads weights written by [`save_safetensors`](Self::save_safetensors) or by PyTorch.
    pub fn load_safetensors(self, path: &Path) -> Result<Self, WeightsError> {
        load_safetensors(self, path, &SAME_LAYOUT)
    }
}

/// Loads a PyTorch `state_dict` file into any burn module whose paths map to the file's keys by
/// `layout`: every tensor of the module must be in the file with its shape, and every tensor of
/// the file (but `num_batches_tracked` and `layout.unused`) in the module. Errors name the
/// tensor in the file's own key names.
pub fn load_pytorch<B: Backend, M: ModuleSnapshot<B>>(
    mut model: M,
    path: &Path,
    layout: &KeyLayout,
) -> Result<M, WeightsError> {
    let mut store = PytorchStore::from_file(path)
        .map_indices_contiguous(false)
        .allow_partial(true)
        .validate(false);
    for (from, to) in layout.burn_remaps() {
        store = store.with_key_remapping(&from, to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_error(path, e))?;
    check_applied(result, path, layout)?;
    Ok(model)
}

fn load_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    mut model: M,
    path: &Path,
    layout: &KeyLayout,
) -> Result<M, WeightsError> {
    if !path.is_file() {
        return Err(read_error(path, "no such file"));
    }
    let mut store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false);
    for (from, to) in layout.burn_remaps() {
        store = store.with_key_remapping(&from, to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_error(path, e))?;
    check_applied(result, path, layout)?;
    Ok(model)
}

fn save_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    model: &M,
    path: &Path,
    layout: &KeyLayout,
) -> Result<(), WeightsError> {
    let fail = |reason: String| WeightsError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        fail(format!(
            "cannot create a file in {}: {}",
            dir.display(),
            e.kind()
        ))
    })?;
    // One metadata entry, as PyTorch writes: burn-store's three default entries come out of a
    // hash map in a different order each run, and the same model must give the same bytes.
    let mut store = SafetensorsStore::from_file(temp.path())
        .overwrite(true)
        .clear_metadata()
        .metadata("format", "pt")
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter);
    for (from, to) in layout.torch_remaps() {
        store = store.with_key_remapping(&from, to);
    }
    model
        .save_into(&mut store)
        .map_err(|e| fail(e.to_string()))?;
    temp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

fn read_error(path: &Path, reason: impl ToString) -> WeightsError {
    WeightsError::Read {
        path: path.to_path_buf(),
        reason: reason.to_string().trim().to_string(),
    }
}

/// Turns burn-store's report into the first problem, named in the file's own key names.
fn check_applied(result: ApplyResult, path: &Path, layout: &KeyLayout) -> Result<(), WeightsError> {
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
                torch_key(key, layout),
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
            key: torch_key(key, layout),
        });
    }
    // burn-store lists a norm layer's `weight`/`bias` as unused even when its adapter applied it
    // as `gamma`/`beta`; only a key applied under neither name is really unexpected.
    let applied_as_renamed = |key: &str| match key.rsplit_once('.') {
        Some((module, "weight")) => result.applied.contains(&format!("{module}.gamma")),
        Some((module, "bias")) => result.applied.contains(&format!("{module}.beta")),
        _ => false,
    };
    if let Some(key) = result.unused.iter().find(|key| {
        let ignored = layout.unused.iter().any(|prefix| key.starts_with(prefix));
        !key.ends_with(".num_batches_tracked") && !ignored && !applied_as_renamed(key)
    }) {
        return Err(WeightsError::UnexpectedKey {
            path,
            key: torch_key(key, layout),
        });
    }
    Ok(())
}

/// A burn module path as the model's PyTorch state_dict names it.
fn torch_key(burn_path: &str, layout: &KeyLayout) -> String {
    let mut key = burn_path.replace(".Down.", ".").replace(".Up.", ".");
    for &(torch, burn) in layout.renames {
        if let Some(rest) = key.strip_prefix(burn) {
            key = format!("{torch}{rest}");
        }
    }
    match key.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => key,
    }
}
