use burn::tensor::{Int, Tensor, backend::Backend};

/// What trainers and samplers need of a model: the output at `(x_t, t)`.
pub trait NoisePredictor<B: Backend> {
    /// Predicts the model target (noise, x0 or v, as trained) for x_t `[N, C, H, W]` at integer
    /// timesteps `t: [N]`. The output has the shape of x_t.
    fn predict(&self, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4>;

    /// Channels of the images the model works on.
    fn image_channels(&self) -> usize;

    /// Image sides must be multiples of this (each downsampling halves them).
    fn size_multiple(&self) -> usize;
}
