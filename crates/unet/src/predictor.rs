use burn::tensor::{Int, Tensor, backend::Backend};
use ddpm_ops::Ops;

/// What trainers and samplers need of a model: the output at `(x_t, t)`.
pub trait NoisePredictor<B: Backend> {
    /// Predicts the model target (noise, x0 or v, as trained) for x_t `[N, C, H, W]` at integer
    /// timesteps `t: [N]`, computing with the operations of `ops`. The output has the shape of
    /// x_t.
    fn predict_with(&self, ops: &Ops<B>, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4>;

    /// [`predict_with`](Self::predict_with) burn's own operations.
    fn predict(&self, x_t: Tensor<B, 4>, t: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.predict_with(&Ops::burn(), x_t, t)
    }

    /// Channels of the images the model works on.
    fn image_channels(&self) -> usize;

    /// Image sides must be multiples of this (each downsampling halves them).
    fn size_multiple(&self) -> usize;
}
