//! cubecl's two caches in one user folder.
//!
//! cubecl reads its configuration once per process (from `cubecl.toml`, or a `[cubecl]` section
//! of `burn.toml`, searched upward from the working folder, then its environment variables) and
//! refuses to change it after that. [`configure_caches`] reads it the same way, keeps everything
//! the user set, points the autotune cache and the compiled-kernel cache (off by default) at
//! [`cache_dir`], and sets it, before any GPU work.

use std::path::{Path, PathBuf};

use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// Where the caches go: `$DDPM_CACHE_DIR`, else `$XDG_CACHE_HOME/ddpm`, else `~/.cache/ddpm`.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = var("DDPM_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    match (var("XDG_CACHE_HOME"), var("HOME")) {
        (Some(cache), _) => PathBuf::from(cache).join("ddpm"),
        (None, Some(home)) => PathBuf::from(home).join(".cache/ddpm"),
        (None, None) => std::env::temp_dir().join("ddpm-cache"),
    }
}

/// The two cache folders under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDirs {
    /// Autotune results: which kernel won for each shape.
    pub autotune: PathBuf,
    /// Compiled kernels (PTX).
    pub kernels: PathBuf,
}

impl CacheDirs {
    /// The folders under `root`.
    pub fn under(root: &Path) -> Self {
        Self {
            autotune: root.join("autotune"),
            kernels: root.join("kernels"),
        }
    }

    /// `config` with its two caches here.
    fn apply(&self, mut config: CubeClRuntimeConfig) -> CubeClRuntimeConfig {
        config.autotune.cache = CacheConfig::File(self.autotune.clone());
        config.compilation.cache = Some(CacheConfig::File(self.kernels.clone()));
        config
    }
}

/// Points cubecl's caches at `root` (see the module's documentation). Call it before the first
/// GPU work of the process; it fails, changing nothing, if cubecl has read its configuration
/// already.
pub fn configure_caches(root: &Path) -> Result<CacheDirs, String> {
    let dirs = CacheDirs::under(root);
    for dir in [&dirs.autotune, &dirs.kernels] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the cache folder {}: {e}", dir.display()))?;
    }
    let config = dirs.apply(CubeClRuntimeConfig::from_current_dir().override_from_env());
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let set = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config));
    std::panic::set_hook(previous_hook);
    set.map_err(|_| "cubecl's configuration was read before the caches could be set".to_string())?;
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use cubecl_runtime::config::autotune::AutotuneLevel;

    use super::*;

    #[test]
    fn both_caches_go_under_the_root_and_the_rest_stays() {
        let dirs = CacheDirs::under(Path::new("/tmp/ddpm-test"));
        let mut user = CubeClRuntimeConfig::default();
        user.autotune.level = AutotuneLevel::Minimal;
        let config = dirs.apply(user);
        assert!(matches!(config.autotune.level, AutotuneLevel::Minimal));
        match (&config.autotune.cache, &config.compilation.cache) {
            (CacheConfig::File(autotune), Some(CacheConfig::File(kernels))) => {
                assert_eq!(autotune, Path::new("/tmp/ddpm-test/autotune"));
                assert_eq!(kernels, Path::new("/tmp/ddpm-test/kernels"));
            }
            other => panic!("caches elsewhere: {other:?}"),
        }
    }

    #[test]
    fn the_cache_folder_follows_the_environment_variable() {
        // Only this test sets it, and only to read it back.
        // SAFETY: no other thread of this test binary reads or writes the environment.
        unsafe { std::env::set_var("DDPM_CACHE_DIR", "/somewhere/else") };
        assert_eq!(cache_dir(), PathBuf::from("/somewhere/else"));
        unsafe { std::env::remove_var("DDPM_CACHE_DIR") };
    }
}
