//! The concrete backends the binary can run on: the one place that names them.

use clap::ValueEnum;

/// A CPU backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// burn's `flex` CPU backend (SIMD + threads): the fastest CPU backend measured here.
    Flex,
    /// burn-ndarray: the design's reference CPU backend (and the tests').
    Ndarray,
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
        })
    }
}

/// burn-flex.
pub type Flex = burn_flex::Flex<f32>;
/// burn-ndarray.
pub type Ndarray = burn_ndarray::NdArray<f32>;

/// Runs `$body` with `$B` bound to the chosen backend type.
#[macro_export]
macro_rules! with_backend {
    ($choice:expr, $B:ident => $body:expr) => {
        match $choice {
            $crate::backend::BackendChoice::Flex => {
                type $B = $crate::backend::Flex;
                $body
            }
            $crate::backend::BackendChoice::Ndarray => {
                type $B = $crate::backend::Ndarray;
                $body
            }
        }
    };
}
