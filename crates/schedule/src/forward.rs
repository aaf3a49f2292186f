use burn::tensor::{Distribution, Int, Tensor, backend::Backend};

use crate::PredictionTarget;
use crate::prediction::Scales;

/// The closed-form forward process q(x_t | x_0) = N(sqrt(alpha_bar_t)·x_0, (1 - alpha_bar_t)·I) on a
/// device, with the conversions between what a noise predictor may be trained to output.
///
/// The coefficient tables live on the device, uploaded once by
/// [`NoiseSchedule::forward_process`](crate::NoiseSchedule::forward_process); every method gathers
/// them for a batch of per-sample timesteps `t: [N]` without touching the host. Tensors are
/// `[N, ...]` of any rank `D`; timesteps must be below `num_timesteps`.
#[derive(Debug, Clone)]
pub struct ForwardProcess<B: Backend> {
    sqrt_alphas_cumprod: Tensor<B, 1>,
    sqrt_one_minus_alphas_cumprod: Tensor<B, 1>,
}

impl<B: Backend> ForwardProcess<B> {
    pub(crate) fn new(
        sqrt_alphas_cumprod: Tensor<B, 1>,
        sqrt_one_minus_alphas_cumprod: Tensor<B, 1>,
    ) -> Self {
        Self {
            sqrt_alphas_cumprod,
            sqrt_one_minus_alphas_cumprod,
        }
    }

    /// Number of diffusion steps T.
    pub fn num_timesteps(&self) -> usize {
        self.sqrt_alphas_cumprod.dims()[0]
    }

    /// `n` timesteps drawn uniformly from `0..T` on `device`, as training draws them.
    pub fn sample_timesteps(&self, n: usize, device: &B::Device) -> Tensor<B, 1, Int> {
        let t_max = self.num_timesteps() as f64;
        Tensor::random([n], Distribution::Uniform(0.0, t_max), device)
    }

    /// Draws x_t ~ q(x_t | x_0) for each sample; returns `(x_t, noise)`.
    pub fn q_sample<const D: usize>(
        &self,
        x0: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        let noise = x0.random_like(Distribution::Normal(0.0, 1.0));
        let x_t = self.q_sample_with_noise(x0, t, noise.clone());
        (x_t, noise)
    }

    /// x_t = sqrt(alpha_bar_t)·x_0 + sqrt(1 - alpha_bar_t)·noise, with the noise given.
    pub fn q_sample_with_noise<const D: usize>(
        &self,
        x0: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
        noise: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let scales = self.scales::<D>(t);
        x0 * scales.signal + noise * scales.noise
    }

    /// The x_0 implied by x_t and its noise: (x_t - sqrt(1 - alpha_bar_t)·noise) / sqrt(alpha_bar_t).
    pub fn x0_from_noise<const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        noise: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        self.scales(t).x0(PredictionTarget::Noise, x_t, noise)
    }

    /// The noise implied by x_t and x_0: (x_t - sqrt(alpha_bar_t)·x_0) / sqrt(1 - alpha_bar_t).
    pub fn noise_from_x0<const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        x0: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        self.scales(t).noise(PredictionTarget::Sample, x_t, x0)
    }

    /// The velocity target v = sqrt(alpha_bar_t)·noise - sqrt(1 - alpha_bar_t)·x_0 (Salimans & Ho 2022).
    pub fn velocity<const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        self.scales(t).velocity(x0, noise)
    }

    /// x_0 from x_t and v: sqrt(alpha_bar_t)·x_t - sqrt(1 - alpha_bar_t)·v.
    pub fn x0_from_velocity<const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        v: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        self.scales(t).x0(PredictionTarget::Velocity, x_t, v)
    }

    /// The noise from x_t and v: sqrt(1 - alpha_bar_t)·x_t + sqrt(alpha_bar_t)·v.
    pub fn noise_from_velocity<const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        v: Tensor<B, D>,
        t: Tensor<B, 1, Int>,
    ) -> Tensor<B, D> {
        self.scales(t).noise(PredictionTarget::Velocity, x_t, v)
    }

    /// Min-SNR-γ loss weights (Hang et al. 2023), one per sample: the weight that turns each
    /// sample's loss on a `kind` output into an error on x_0 weighted min(SNR_t, γ), with
    /// SNR_t = alpha_bar_t / (1 - alpha_bar_t). Nearly clean timesteps, whose high SNR would
    /// otherwise dominate, are capped, so training spends itself where the image's shape forms.
    pub fn min_snr_weights(
        &self,
        kind: PredictionTarget,
        t: Tensor<B, 1, Int>,
        gamma: f64,
    ) -> Tensor<B, 1> {
        let scales = self.scales::<1>(t);
        let snr = scales.signal.powi_scalar(2) / scales.noise.powi_scalar(2);
        let capped = snr.clone().clamp_max(gamma);
        match kind {
            // An error on the noise is one on x_0 times SNR; on v, times SNR + 1.
            PredictionTarget::Noise => capped / snr,
            PredictionTarget::Sample => capped,
            PredictionTarget::Velocity => capped / snr.add_scalar(1.0),
        }
    }

    /// sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) gathered for each sample, shaped
    /// `[N, 1, ..., 1]` to broadcast over a rank-`D` batch.
    pub(crate) fn scales<const D: usize>(&self, t: Tensor<B, 1, Int>) -> Scales<Tensor<B, D>> {
        let mut shape = [1; D];
        shape[0] = t.dims()[0];
        let gather = |table: &Tensor<B, 1>| table.clone().select(0, t.clone()).reshape(shape);
        Scales {
            signal: gather(&self.sqrt_alphas_cumprod),
            noise: gather(&self.sqrt_one_minus_alphas_cumprod),
        }
    }
}
