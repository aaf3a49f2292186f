//! How a kernel crate offers its backend's tables.
//!
//! The binary chooses a backend and passes the user's switches to that backend's kernel crate;
//! the crate's [`KernelTables`] value turns them into the two tables a run needs, in the
//! precision asked for, or says in a [`TableError`] why that combination cannot run. burn's own
//! operations on any backend are [`BurnTables`].

use std::marker::PhantomData;

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::{BurnHeavy, GatheredHeavy, Ops, Precision, TrainingOps};

/// A kernel crate's tables for one backend, made from the switches it was built with.
pub trait KernelTables {
    /// The backend of the inference table (and the inner backend of training).
    type Backend: Backend;
    /// The autodiff backend of the training table.
    type Autodiff: AutodiffBackend<InnerBackend = Self::Backend>;

    /// The table for sampling, its heavy entries in `precision`.
    fn inference(&self, precision: Precision) -> Result<Ops<Self::Backend>, TableError>;

    /// The tables for training (the model's passes, and sampling and the optimiser on the inner
    /// backend), their heavy entries in `precision`.
    fn training(&self, precision: Precision) -> Result<TrainingOps<Self::Autodiff>, TableError>;
}

/// Why a kernel crate cannot make a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Some of the chosen kernels compute in f32 only.
    #[error("{kernels} compute in f32 only, so they cannot run in {precision}; {hint}")]
    Precision {
        /// The kernels, as the user knows them.
        kernels: &'static str,
        /// The precision asked for.
        precision: Precision,
        /// What to switch off instead.
        hint: &'static str,
    },
    /// Two switches that do not go together.
    #[error("{0}")]
    Conflict(&'static str),
}

/// burn's operations on any backend `B`: optionally with the narrow deep convolutions gathered
/// over the batch, and with Adam stepping the parameters concurrently (right for CPU backends,
/// whose operations each run on one thread).
pub struct BurnTables<B> {
    /// Narrow deep layers as one product over the batch ([`gather`](crate::gather)).
    pub gathering: bool,
    /// Adam steps the parameters concurrently on rayon's pool.
    pub concurrent_adam: bool,
    backend: PhantomData<fn() -> B>,
}

impl<B> BurnTables<B> {
    /// burn's operations, gathered if `gathering`, Adam concurrent if `concurrent_adam`.
    pub fn new(gathering: bool, concurrent_adam: bool) -> Self {
        Self {
            gathering,
            concurrent_adam,
            backend: PhantomData,
        }
    }

    /// One table of either backend.
    fn table<T: Backend>(&self, precision: Precision) -> Ops<T> {
        let mut ops = match self.gathering {
            true => Ops::burn().with_heavy::<GatheredHeavy>(precision),
            false => Ops::burn().with_heavy::<BurnHeavy>(precision),
        };
        ops.adam.concurrent = self.concurrent_adam;
        ops
    }
}

impl<B> std::fmt::Debug for BurnTables<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BurnTables")
            .field("gathering", &self.gathering)
            .field("concurrent_adam", &self.concurrent_adam)
            .finish()
    }
}

impl<B: Backend> KernelTables for BurnTables<B> {
    type Backend = B;
    type Autodiff = Autodiff<B>;

    fn inference(&self, precision: Precision) -> Result<Ops<B>, TableError> {
        Ok(self.table(precision))
    }

    fn training(&self, precision: Precision) -> Result<TrainingOps<Autodiff<B>>, TableError> {
        Ok(TrainingOps {
            training: self.table(precision),
            inner: self.table(precision),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn_ndarray::NdArray;

    use super::*;

    #[test]
    fn burn_tables_carry_their_precision_and_adam_setting() {
        let tables = BurnTables::<NdArray<f32>>::new(true, true);
        let training = tables.training(Precision::Bf16).unwrap();
        assert_eq!(training.training.precision, Precision::Bf16);
        assert_eq!(training.inner.precision, Precision::Bf16);
        assert!(training.inner.adam.concurrent);
        let inference = BurnTables::<NdArray<f32>>::new(false, false)
            .inference(Precision::F32)
            .unwrap();
        assert_eq!(inference.precision, Precision::F32);
        assert!(!inference.adam.concurrent);
    }
}
