//! DDPM training generic over `B: AutodiffBackend`: recipes, EMA, atomic checkpoints and exact
//! resume. Not written yet; see the issue "The `trainer` crate".
