//! Sample quality as the field measures it: FID (Heusel et al. 2017) and KID (Bińkowski et al.
//! 2018) on the FID Inception network, computed as pytorch-fid and torch-fidelity compute them.
//!
//! - [`FidInception`]: the network, loaded from pytorch-fid's weights file, fed as pytorch-fid
//!   feeds it (299×299 bilinear, `2x − 1`); [`pixels`] and [`quantize`] turn pictures and model
//!   outputs into its input.
//! - [`FeatureAccumulator`] → [`FeatureStats`]: mean and covariance in f64 (`N − 1`), gathered
//!   batch by batch, with a bounded seeded sample of the features for KID; saved and loaded as
//!   safetensors, so a reference set's statistics are computed once.
//! - [`frechet_distance`]: FID from two sets of statistics; [`kid`]: KID from two feature sets.
//!
//! ```
//! use ddpm_eval::{Features, FeatureStats, frechet_distance};
//!
//! let a = Features { dims: 2, values: vec![0.0, 1.0, 1.0, 0.0, 2.0, 2.0] };
//! let stats = FeatureStats::of(&a);
//! assert!(frechet_distance(&stats, &stats).unwrap().abs() < 1e-9);
//! ```

mod compare;
mod error;
mod extract;
mod frechet;
mod inception;
mod kid;
mod network;
mod rng;
mod stats;

pub use compare::Comparison;
pub use error::EvalError;
pub use extract::{KID_SAMPLE, NETWORK_BATCH};
pub use frechet::frechet_distance;
pub use inception::{FEATURES, FidInception, pixels, quantize};
pub use kid::{KID_SUBSET_SIZE, KID_SUBSETS, Kid, kid};
pub use stats::{FeatureAccumulator, FeatureStats, Features};
