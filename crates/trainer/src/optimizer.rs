//! burn's Adam, stepping the parameters as the backend's table says: concurrently, or by a
//! one-pass kernel.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleMapper, Param, ParamId};
use burn::optim::adaptor::{GradAdaptor, OptimizerAdaptor};
use burn::optim::grad_clipping::GradientClipping;
use burn::optim::record::AdaptorRecord;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, GradientsParams, LearningRate,
    MultiGradientsParams, Optimizer, SimpleOptimizer,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Shape, Tensor};
use ddpm_ops::{AdamConstants, AdamOps, AdamStepFn};
use rayon::prelude::*;

/// Adam's state of every parameter: burn's record for `OptimizerAdaptor<Adam, M, B>`, so
/// checkpoints written by either optimiser load in the other.
pub type AdamRecord<M, B> = <OptimizerAdaptor<Adam, M, B> as Optimizer<M, B>>::Record;

/// burn's Adam ([`AdamConfig::init`]), stepping the parameters concurrently on rayon's pool where
/// the backend's table asks for it.
///
/// Why: burn's optimiser adaptor steps one parameter after another, and on a CPU backend most
/// of Adam's dozen elementwise passes then run on one thread. Parameters
/// are independent, so stepping them concurrently changes no value: each goes through burn's own
/// `Adam::step` (the same operations in the same order) and per-parameter gradient clipping, and
/// the state is burn's record ([`AdamRecord`]).
///
/// Each gradient is first copied into a contiguous buffer (see `row_major`), in the same
/// concurrent pass: burn computes a convolution's weight gradient as a transposed view, which
/// CPU backends would otherwise walk element by element in every one of Adam's operations.
///
/// How the parameters are stepped comes from the inner backend's table ([`AdamOps`]): one after
/// another, as burn does (for GPU backends, where each step only queues kernels), unless
/// `concurrent`; and where the table has a one-pass step, f32 parameters take it instead of burn's
/// operations (the same values to the bit), and their gradients skip the copy above: the step
/// reads each once anyway.
pub struct ThreadedAdam<M: AutodiffModule<B>, B: AutodiffBackend> {
    adam: Adam,
    constants: Option<AdamConstants>,
    clipping: Option<GradientClipping>,
    records: AdamRecord<M, B>,
    ops: AdamOps<B::InnerBackend>,
    module: PhantomData<M>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ThreadedAdam<M, B> {
    /// The Adam of `config` (betas, epsilon, weight decay, gradient clipping), stepping the
    /// parameters as `ops` says.
    pub fn new(config: &AdamConfig, ops: AdamOps<B::InnerBackend>) -> Self {
        let adaptor = config.init::<B, M>();
        Self {
            adam: adaptor.optim().clone(),
            constants: AdamConstants::of(config),
            clipping: adaptor.grad_clipping().cloned(),
            records: Default::default(),
            ops,
            module: PhantomData,
        }
    }

    fn step_grads(&mut self, lr: LearningRate, module: M, mut grads: GradAdaptor) -> M {
        let mut take = TakeParams::<M, B> {
            grads: &mut grads,
            records: &mut self.records,
            adam: &self.adam,
            one_pass: self.ops.step.zip(self.constants),
            clipping: self.clipping.as_ref(),
            lr,
            jobs: Vec::new(),
        };
        let module = module.map(&mut take);
        let jobs = take.jobs;
        let stepped: Vec<Stepped<B>> = if self.ops.concurrent {
            jobs.into_par_iter().map(|job| job()).collect()
        } else {
            jobs.into_iter().map(|job| job()).collect()
        };
        module.map(&mut PutParams::<M, B> {
            stepped: stepped.into_iter().map(|s| (s.id, s)).collect(),
            records: &mut self.records,
        })
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Clone for ThreadedAdam<M, B> {
    fn clone(&self) -> Self {
        Self {
            adam: self.adam.clone(),
            constants: self.constants,
            clipping: self.clipping.clone(),
            records: self.records.clone(),
            ops: self.ops,
            module: PhantomData,
        }
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for ThreadedAdam<M, B> {
    type Record = AdamRecord<M, B>;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        self.step_grads(lr, module, grads.into())
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.step_grads(lr, module, grads.into())
    }

    fn to_record(&self) -> Self::Record {
        self.records.clone()
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.records = record;
        self
    }
}

/// One parameter's step.
type Job<'a, B> = Box<dyn FnOnce() -> Stepped<B> + Send + 'a>;

/// A stepped parameter, flattened so that parameters of every rank share one list.
struct Stepped<B: AutodiffBackend> {
    id: ParamId,
    value: Tensor<B::InnerBackend, 1>,
    shape: Shape,
    require_grad: bool,
    record: Option<AdaptorRecord<Adam, B>>,
}

/// Takes each parameter that has a gradient out of the module (leaving an empty tensor, so that
/// Adam's operations own their buffers and update them in place) and makes its step a job.
struct TakeParams<'a, 'm, M: AutodiffModule<B>, B: AutodiffBackend> {
    grads: &'m mut GradAdaptor,
    records: &'m mut AdamRecord<M, B>,
    adam: &'a Adam,
    one_pass: Option<(AdamStepFn<B::InnerBackend>, AdamConstants)>,
    clipping: Option<&'a GradientClipping>,
    lr: LearningRate,
    jobs: Vec<Job<'a, B>>,
}

impl<'a, M: AutodiffModule<B>, B: AutodiffBackend> ModuleMapper<B> for TakeParams<'a, '_, M, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some((grad, _)) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let placeholder = Tensor::empty([0; D], &tensor.device());
        let require_grad = tensor.is_require_grad();
        let value = tensor.inner();
        let state = self.records.remove(&id).map(|r| r.into_state::<D>());
        let (adam, clipping, lr) = (self.adam, self.clipping, self.lr);
        let one_pass = self
            .one_pass
            .filter(|_| value.dtype() == DType::F32 && grad.dtype() == DType::F32);
        let job: Job<'a, B> = Box::new(move || {
            let clip = |grad| match clipping {
                Some(clipping) => clipping.clip_gradient(grad),
                None => grad,
            };
            // The one-pass step reads the gradient in one pass itself: no row-major copy first.
            let (value, state) = match one_pass {
                Some((step, constants)) => {
                    one_pass_step(step, &constants, lr, value, clip(grad), state)
                }
                None => SimpleOptimizer::step(adam, lr, value, clip(row_major(grad)), state),
            };
            let shape = value.shape();
            Stepped {
                id,
                value: value.reshape([shape.num_elements()]),
                shape,
                require_grad,
                record: state.map(AdaptorRecord::from_state),
            }
        });
        self.jobs.push(job);
        Param::from_mapped_value(id, placeholder, mapper)
    }
}

/// A registered one-pass step on a parameter of any rank: flattened, stepped, shaped back.
fn one_pass_step<B: Backend, const D: usize>(
    step: AdamStepFn<B>,
    constants: &AdamConstants,
    lr: LearningRate,
    value: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<AdamState<B, D>>,
) -> (Tensor<B, D>, Option<AdamState<B, D>>) {
    let shape = value.shape();
    let count = shape.num_elements();
    let state = state.map(|state| {
        let momentum = state.momentum;
        AdaptiveMomentumState::new(
            momentum.time,
            momentum.moment_1.reshape([count]),
            momentum.moment_2.reshape([count]),
        )
    });
    let (value, momentum) = step(
        constants,
        lr,
        value.reshape([count]),
        grad.reshape([count]),
        state,
    );
    let momentum = AdaptiveMomentumState::new(
        momentum.time,
        momentum.moment_1.reshape(shape.clone()),
        momentum.moment_2.reshape(shape.clone()),
    );
    (value.reshape(shape), Some(AdamState::new(momentum)))
}

/// Puts the stepped parameters back in place of the empty tensors, and their state in the record.
struct PutParams<'a, M: AutodiffModule<B>, B: AutodiffBackend> {
    stepped: HashMap<ParamId, Stepped<B>>,
    records: &'a mut AdamRecord<M, B>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ModuleMapper<B> for PutParams<'_, M, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(stepped) = self.stepped.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let mut value = Tensor::from_inner(stepped.value.reshape(stepped.shape));
        if stepped.require_grad {
            value = value.require_grad();
        }
        if let Some(record) = stepped.record {
            self.records.insert(id, record);
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// `tensor`'s values in row-major order, in a buffer of their own.
///
/// A reshape of a strided view would do, but burn-flex copies a view it cannot fold into two
/// dimensions, such as a weight gradient `[Cout, Cin, kh, kw]` stored as `[Cin, Cout, kh, kw]`,
/// one element at a time through an index iterator. It negates a view that does not begin at the
/// start of its buffer one contiguous run (here kh·kw values) at a time instead. So the first row
/// and the rest are negated apart, joined, and negated back in place: exact (a sign flip), and
/// faster than the reshape. Gradients that are contiguous
/// already (a SimpleUnet layer computed as a matrix product) are copied too: burn has no
/// backend-generic way to ask.
fn row_major<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    let rows = tensor.dims()[0];
    if D < 2 || rows < 2 {
        let shape = tensor.shape();
        return tensor.reshape([shape.num_elements()]).reshape(shape);
    }
    let first = tensor.clone().narrow(0, 0, 1).neg();
    let rest = tensor.narrow(0, 1, rows - 1).neg();
    Tensor::cat(vec![first, rest], 0).neg()
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::module::{Module, ModuleVisitor};
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::grad_clipping::GradientClippingConfig;
    use burn::tensor::Int;
    use burn_ndarray::NdArray;

    use super::*;

    type B = Autodiff<NdArray<f32>>;

    /// A convolution with stride 2 (its weight gradient is a transposed, sliced view), a norm
    /// and a linear layer: parameters of ranks 1, 2 and 4.
    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        conv: Conv2d<B>,
        norm: BatchNorm<B>,
        linear: Linear<B>,
    }

    impl Net<B> {
        /// A network with its parameters drawn (burn draws them lazily, and a clone of a
        /// parameter not drawn yet draws its own).
        fn new() -> Self {
            let device = Default::default();
            let net = Self {
                // No bias: the norm after it would cancel its gradient to rounding noise, which
                // Adam scales up to steps of its own.
                conv: Conv2dConfig::new([3, 4], [3, 3])
                    .with_stride([2, 2])
                    .with_bias(false)
                    .init(&device),
                norm: BatchNormConfig::new(4).init(&device),
                linear: LinearConfig::new(4 * 4 * 4, 5).init(&device),
            };
            net.values();
            net
        }

        /// The gradients of a loss on the `step`-th batch.
        fn grads(&self, step: u64) -> GradientsParams {
            // Not random: the backend's generator is shared with the tests running beside.
            let device = Default::default();
            let x = Tensor::<B, 1, Int>::arange(0..2 * 3 * 9 * 9, &device)
                .float()
                .mul_scalar(0.37 * (step + 1) as f64)
                .sin()
                .reshape([2, 3, 9, 9]);
            let y = self.norm.forward(self.conv.forward(x)).flatten::<2>(1, 3);
            let loss = self.linear.forward(y).powi_scalar(2).mean();
            GradientsParams::from_grads(loss.backward(), self)
        }

        /// The trainable parameters' values. (Not the norm's running statistics: clones of a
        /// module share them.)
        fn values(&self) -> Vec<Vec<f32>> {
            struct Values(Vec<Vec<f32>>);
            impl ModuleVisitor<B> for Values {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                    let value = param.val();
                    if value.is_require_grad() {
                        self.0.push(value.into_data().to_vec().unwrap());
                    }
                }
            }
            let mut values = Values(Vec::new());
            self.visit(&mut values);
            values.0
        }
    }

    /// Steps `optim` on `net` for the batches `steps`.
    fn train<O: Optimizer<Net<B>, B>>(
        mut net: Net<B>,
        optim: &mut O,
        steps: std::ops::Range<u64>,
    ) -> Net<B> {
        for step in steps {
            let grads = net.grads(step);
            net = optim.step(1e-2, net, grads);
        }
        net
    }

    fn burns(config: &AdamConfig) -> OptimizerAdaptor<Adam, Net<B>, B> {
        config.init()
    }

    /// burn's operations, the parameters stepped concurrently.
    fn concurrent() -> AdamOps<NdArray<f32>> {
        AdamOps {
            step: None,
            concurrent: true,
        }
    }

    #[test]
    fn steps_exactly_as_burns_adam_does() {
        let config = AdamConfig::new().with_weight_decay(Some(WeightDecayConfig::new(1e-3)));
        let start = Net::new();
        let expected = train(start.clone(), &mut burns(&config), 0..3).values();
        for concurrent in [true, false] {
            let ops = AdamOps {
                step: None,
                concurrent,
            };
            let mut ours = ThreadedAdam::new(&config, ops);
            let values = train(start.clone(), &mut ours, 0..3).values();
            assert_eq!(values.len(), 5);
            assert_eq!(values, expected, "concurrent: {concurrent}");
        }
    }

    #[test]
    fn clips_each_gradient_as_burn_does() {
        // A small norm, so that every gradient is clipped.
        let config = AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(1e-3)));
        let start = Net::new();
        let expected = train(start.clone(), &mut burns(&config), 0..3).values();
        let values = train(start, &mut ThreadedAdam::new(&config, concurrent()), 0..3).values();
        assert_eq!(values.len(), 5);
        for (ours, burns) in values.iter().zip(&expected) {
            for (a, b) in ours.iter().zip(burns) {
                assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn its_state_and_burns_load_in_each_other() {
        let config = AdamConfig::new();
        let start = Net::new();
        let expected = train(start.clone(), &mut burns(&config), 0..3).values();

        let mut first = burns(&config);
        let net = train(start, &mut first, 0..1);
        let mut ours = ThreadedAdam::new(&config, concurrent()).load_record(first.to_record());
        let net = train(net, &mut ours, 1..2);
        let mut last = burns(&config).load_record(ours.to_record());
        assert_eq!(train(net, &mut last, 2..3).values(), expected);
    }
}
