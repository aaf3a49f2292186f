use burn::tensor::{Int, Tensor, backend::Backend};

/// The sinusoidal timestep embedding of the seed and of Ho et al.: for `half = dim / 2`,
/// frequencies `exp(-ln(10000)·i / (half - 1))`, `i < half`, and `[sin(t·f), cos(t·f)]`.
///
/// `dim` must be even and at least 4. Computed on the device; returns `[N, dim]`.
pub fn sinusoidal_embedding<B: Backend>(t: Tensor<B, 1, Int>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let scale = 10000f64.ln() / (half - 1) as f64;
    let device = t.device();
    let frequencies = Tensor::<B, 1, Int>::arange(0..half as i64, &device)
        .float()
        .mul_scalar(-scale)
        .exp();
    let angles = t.float().unsqueeze_dim::<2>(1) * frequencies.unsqueeze_dim::<2>(0);
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}
