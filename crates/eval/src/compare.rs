//! FID and KID of one set of statistics against a reference, with what a reader should know
//! about their counts.

use serde::Serialize;

use crate::{
    EvalError, FEATURES, FeatureStats, KID_SUBSET_SIZE, KID_SUBSETS, Kid, frechet_distance, kid,
};

/// FID and (where both sets kept features) KID.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The Fréchet Inception Distance.
    pub fid: f64,
    /// KID over torch-fidelity's subsets, if both sets kept at least two feature vectors.
    pub kid: Option<Kid>,
    /// Images of the evaluated set.
    pub count: usize,
    /// Images of the reference set.
    pub reference_count: usize,
}

impl Comparison {
    /// FID of `ours` against `reference`, and KID over subsets drawn from `seed`.
    pub fn of(ours: &FeatureStats, reference: &FeatureStats, seed: u64) -> Result<Self, EvalError> {
        for stats in [ours, reference] {
            if stats.count < 2 {
                return Err(EvalError::TooFewImages {
                    what: "FID",
                    needed: 2,
                    got: stats.count,
                });
            }
        }
        let kid = match ours.sample.rows() >= 2 && reference.sample.rows() >= 2 {
            true => Some(kid(
                &ours.sample,
                &reference.sample,
                KID_SUBSETS,
                KID_SUBSET_SIZE,
                seed,
            )?),
            false => None,
        };
        Ok(Self {
            fid: frechet_distance(ours, reference)?,
            kid,
            count: ours.count,
            reference_count: reference.count,
        })
    }

    /// Sets of fewer images than the network has features: their covariance is singular, and FID
    /// is biased upward.
    pub fn warnings(&self) -> Vec<String> {
        [("the evaluated set", self.count), ("the reference", self.reference_count)]
            .into_iter()
            .filter(|&(_, count)| count < FEATURES)
            .map(|(what, count)| {
                format!(
                    "{what} has {count} images, fewer than the network's {FEATURES} features: its \
                     covariance is singular and FID is biased upward; compare only FIDs of equal counts"
                )
            })
            .collect()
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FID {:.3}", self.fid)?;
        if let Some(kid) = &self.kid {
            write!(f, ", KID {:.5} ± {:.5}", kid.mean, kid.std)?;
        }
        write!(
            f,
            " ({} images against {} reference images)",
            self.count, self.reference_count
        )
    }
}
