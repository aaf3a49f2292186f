//! What every reverse-process sampler shares: the [`Sampler`] trait and the sampling loop.

use burn::tensor::{Distribution, Int, Tensor, backend::Backend};

/// A reverse-process sampler, shaped like a diffusers scheduler: configured and given its
/// timesteps when built, then stepped from the noisiest timestep down.
///
/// Every step works on a whole batch whose samples share the timestep `t`.
pub trait Sampler<B: Backend> {
    /// The timesteps the reverse pass visits, noisiest first.
    fn timesteps(&self) -> &[usize];

    /// Whether the step from `t` adds fresh noise.
    fn is_stochastic(&self, t: usize) -> bool;

    /// One step from `x_t` given the model's output at `(x_t, t)` and the step's standard-normal
    /// noise (shaped like `x_t`). With `noise = None` a stochastic step returns its mean.
    fn step_with_noise(
        &self,
        output: Tensor<B, 4>,
        t: usize,
        x_t: Tensor<B, 4>,
        noise: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 4>;

    /// One step from `x_t`, drawing its noise (if any) from the backend's generator.
    fn step(&self, output: Tensor<B, 4>, t: usize, x_t: Tensor<B, 4>) -> Tensor<B, 4> {
        let noise = self
            .is_stochastic(t)
            .then(|| x_t.random_like(Distribution::Normal(0.0, 1.0)));
        self.step_with_noise(output, t, x_t, noise)
    }
}

/// Samples a batch of `shape` from pure noise with `model(x_t, t)`; see [`sample_from`].
pub fn sample<B: Backend, S: Sampler<B> + ?Sized>(
    sampler: &S,
    model: impl Fn(Tensor<B, 4>, Tensor<B, 1, Int>) -> Tensor<B, 4>,
    shape: [usize; 4],
    snapshots: usize,
    device: &B::Device,
) -> Vec<Tensor<B, 4>> {
    let x_t = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    sample_from(sampler, model, x_t, snapshots)
}

/// Runs the whole reverse pass from `x_t` (the batch at the sampler's first timestep), all samples
/// in parallel. Returns the result, preceded when `snapshots > 1` by about `snapshots` states
/// taken every `ceil(steps / snapshots)` steps, the first being `x_t` itself.
pub fn sample_from<B: Backend, S: Sampler<B> + ?Sized>(
    sampler: &S,
    model: impl Fn(Tensor<B, 4>, Tensor<B, 1, Int>) -> Tensor<B, 4>,
    mut x_t: Tensor<B, 4>,
    snapshots: usize,
) -> Vec<Tensor<B, 4>> {
    let device = x_t.device();
    let n = x_t.dims()[0];
    let steps = sampler.timesteps();
    let keep_every = steps.len().div_ceil(snapshots.max(1)).max(1);
    let mut kept = Vec::new();
    for (i, &t) in steps.iter().enumerate() {
        if snapshots > 1 && i.is_multiple_of(keep_every) {
            kept.push(x_t.clone());
        }
        // Filled on the device: no host upload per step.
        let t_batch = Tensor::<B, 1, Int>::full([n], t as i64, &device);
        let output = model(x_t.clone(), t_batch);
        x_t = sampler.step(output, t, x_t);
    }
    kept.push(x_t);
    kept
}
