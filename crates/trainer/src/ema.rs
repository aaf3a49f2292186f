//! An exponential moving average of a model's weights, kept as a second copy of the model.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, backend::Backend};

use crate::EmaConfig;

/// Updates `ema` towards `online` in place of a new copy: `ema ← d·ema + (1 − d)·online`, with
/// `d` the configured decay (ramped up during warm-up). Parameters are matched by their ids, which
/// a copy made with `Module::valid` or `clone` shares with its original; BatchNorm running
/// statistics are averaged like weights.
pub fn update_ema<B: Backend, M: Module<B>>(
    ema: M,
    online: &M,
    config: &EmaConfig,
    step: u64,
) -> M {
    let decay = ema_decay(config, step);
    let mut collector = Collector(HashMap::new());
    online.visit(&mut collector);
    ema.map(&mut Blend {
        online: collector.0,
        decay,
    })
}

/// The decay used after `step` optimiser steps.
pub fn ema_decay(config: &EmaConfig, step: u64) -> f64 {
    if config.warmup {
        config.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    } else {
        config.decay
    }
}

/// Each float parameter, flattened, by id.
struct Collector<B: Backend>(HashMap<ParamId, Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Collector<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let numel = tensor.shape().num_elements();
        self.0.insert(param.id, tensor.reshape([numel]));
    }
}

struct Blend<B: Backend> {
    online: HashMap<ParamId, Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let blended = match self.online.remove(&id) {
            Some(online) => {
                let online = online.reshape(tensor.shape());
                tensor.mul_scalar(self.decay) + online.mul_scalar(1.0 - self.decay)
            }
            None => tensor,
        };
        Param::from_mapped_value(id, blended, mapper)
    }
}
