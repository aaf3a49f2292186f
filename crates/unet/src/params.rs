use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;

/// Trainable parameters, counted as PyTorch's `sum(p.numel() for p in model.parameters())` does:
/// BatchNorm running statistics are state, not parameters (burn's `num_params` counts them).
pub fn trainable_params<B: Backend, M: Module<B> + ModuleSnapshot<B>>(module: &M) -> usize {
    module
        .collect(None, None, false)
        .iter()
        .filter(|tensor| {
            let path = tensor.full_path();
            !(path.ends_with("running_mean") || path.ends_with("running_var"))
        })
        .map(|tensor| tensor.shape.num_elements())
        .sum()
}
