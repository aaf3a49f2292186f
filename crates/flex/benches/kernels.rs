//! Each kernel against burn-flex's own operation on the models' shapes: `cargo bench -p
//! ddpm-flex` (add a filter word to run only the cases whose name contains it). Prints the
//! median milliseconds of each, forward + backward where the operation trains.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{Distribution, Tensor};
use ddpm_flex::{Flex, FlexAutodiff, FlexKernels};
use ddpm_ops::{AdamConstants, GroupNormOptions, Ops};

/// Median seconds of `reps` runs of `f`, after one untimed run.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut seconds: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    seconds[reps / 2]
}

fn normal<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// A 3×3 (or 4×4 stride 2) convolution's forward and backward pass through `ops`.
fn conv_step(ops: &Ops<FlexAutodiff>, [n, cin, cout, side, kernel, stride]: [usize; 6]) {
    let x = normal::<FlexAutodiff, 4>([n, cin, side, side]).require_grad();
    let w = normal::<FlexAutodiff, 4>([cout, cin, kernel, kernel]).require_grad();
    let b = normal::<FlexAutodiff, 1>([cout]).require_grad();
    let options = PaddedConvOptions::asymmetric([stride; 2], [1, 1], [1, 1], [1, 1], 1);
    let y = (ops.conv2d)(x, w, Some(b), options);
    let _ = y.sum().backward();
}

/// The paper U-Net's GroupNorm + SiLU forward and backward through `ops` (32 groups).
fn group_norm_step(ops: &Ops<FlexAutodiff>, [n, c, side]: [usize; 3]) {
    let x = normal::<FlexAutodiff, 4>([n, c, side, side]).require_grad();
    let gamma = normal::<FlexAutodiff, 1>([c]).require_grad();
    let beta = normal::<FlexAutodiff, 1>([c]).require_grad();
    let options = GroupNormOptions {
        groups: 32,
        epsilon: 1e-6,
        silu: true,
    };
    let _ = (ops.group_norm)(x, gamma, beta, options).sum().backward();
}

/// The paper U-Net's attention forward and backward through `ops`, `[N, C, L]`.
fn attention_step(ops: &Ops<FlexAutodiff>, shape: [usize; 3]) {
    let input = || normal::<FlexAutodiff, 3>(shape).require_grad();
    let _ = (ops.attention)(input(), input(), input()).sum().backward();
}

/// A convolution's inference pass through `ops` (inputs made before the timing starts), with
/// `kernel − 1` padding split evenly.
fn conv_forward(ops: &Ops<Flex>, [n, cin, cout, side, kernel, stride]: [usize; 6]) -> impl FnMut() {
    let x = normal::<Flex, 4>([n, cin, side, side]);
    let w = normal::<Flex, 4>([cout, cin, kernel, kernel]);
    let b = normal::<Flex, 1>([cout]);
    let pad = kernel / 2;
    let options = PaddedConvOptions::asymmetric([stride; 2], [pad; 2], [pad; 2], [1, 1], 1);
    let conv2d = ops.conv2d;
    move || {
        let _ = conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone()).into_data();
    }
}

/// SimpleUnet's ReLU + BatchNorm forward and backward through `ops`.
fn norm_step(ops: &Ops<FlexAutodiff>, [n, c, side]: [usize; 3]) {
    let x = normal::<FlexAutodiff, 4>([n, c, side, side]).require_grad();
    let gamma = normal::<FlexAutodiff, 1>([c]).require_grad();
    let offset = normal::<FlexAutodiff, 2>([n, c]).require_grad();
    let y = (ops.relu_batch_norm)(x, gamma, offset, 1e-5).output;
    let _ = y.sum().backward();
}

fn main() {
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let runs = |name: &str| {
        filter
            .as_ref()
            .is_none_or(|word| name.contains(word.as_str()))
    };
    let ours = FlexKernels::default().training();
    let patches = FlexKernels {
        winograd: false,
        ..FlexKernels::default()
    };
    let patches_training = patches.training().training;
    let burns = Ops::<FlexAutodiff>::burn();
    println!("{:<44} {:>10} {:>10}", "case", "burn ms", "ours ms");
    let report = |name: String, burn: f64, ours: f64| {
        println!("{name:<44} {:>10.2} {:>10.2}", burn * 1e3, ours * 1e3);
    };
    // [batch, in, out, side, kernel, stride]: cpu-demo's layers at batch 64, the seed's at 8.
    let convs = [
        [64, 16, 16, 16, 3, 1],
        [64, 32, 32, 8, 3, 1],
        [64, 32, 32, 8, 4, 2],
        [64, 32, 32, 4, 3, 1],
        [64, 32, 32, 16, 3, 1],
        [8, 64, 64, 32, 3, 1],
        [8, 128, 128, 32, 3, 1],
        [8, 256, 256, 16, 3, 1],
        [8, 256, 256, 8, 3, 1],
        [8, 256, 256, 4, 3, 1],
        [8, 512, 512, 8, 3, 1],
    ];
    for shape in convs {
        let name = format!("conv {shape:?} fwd+bwd");
        if runs(&name) {
            let burn = time(5, || conv_step(&burns, shape));
            report(name, burn, time(5, || conv_step(&ours.training, shape)));
            let without = time(5, || conv_step(&patches_training, shape));
            report("  without Winograd".into(), burn, without);
        }
    }
    // The paper U-Net's inference convolutions at batch 8, with their GFLOP/s.
    let paper_convs = [
        [8, 128, 128, 32, 3, 1],
        [8, 256, 128, 32, 3, 1],
        [8, 256, 256, 16, 3, 1],
        [8, 512, 256, 16, 3, 1],
        [8, 256, 256, 8, 3, 1],
        [8, 256, 256, 4, 3, 1],
        [8, 256, 256, 16, 1, 1],
        [8, 256, 128, 32, 1, 1],
    ];
    let inference = FlexKernels::default().inference();
    for shape in paper_convs {
        let name = format!("paper conv {shape:?} fwd");
        if runs(&name) {
            let burn = time(5, conv_forward(&Ops::burn(), shape));
            let ours = time(5, conv_forward(&inference, shape));
            let [n, cin, cout, side, kernel, _] = shape;
            let flops = 2.0 * (n * cin * cout * side * side * kernel * kernel) as f64;
            report(name, burn, ours);
            let without = time(5, conv_forward(&patches.inference(), shape));
            report("  without Winograd".into(), burn, without);
            println!(
                "{:<44} {:>10.1} {:>10.1}",
                "  GFLOP/s",
                flops / burn / 1e9,
                flops / ours / 1e9
            );
        }
    }
    for shape in [[64, 32, 16], [8, 128, 32]] {
        let name = format!("relu+batchnorm {shape:?} fwd+bwd");
        if runs(&name) {
            let burn = time(5, || norm_step(&burns, shape));
            report(name, burn, time(5, || norm_step(&ours.training, shape)));
        }
    }
    for shape in [[8, 128, 32], [8, 256, 16]] {
        let name = format!("groupnorm+silu {shape:?} fwd+bwd");
        if runs(&name) {
            let burn = time(5, || group_norm_step(&burns, shape));
            report(
                name,
                burn,
                time(5, || group_norm_step(&ours.training, shape)),
            );
        }
    }
    let shape = [8, 256, 256];
    let name = format!("attention {shape:?} fwd+bwd");
    if runs(&name) {
        let burn = time(5, || attention_step(&burns, shape));
        report(
            name,
            burn,
            time(5, || attention_step(&ours.training, shape)),
        );
    }
    let name = "adam step, 9.4M values".to_string();
    if runs(&name) {
        let constants = AdamConstants::of(&burn::optim::AdamConfig::new()).expect("plain Adam");
        let step = ours.inner.adam.step.expect("flex has a one-pass Adam step");
        let values = || normal::<Flex, 1>([1024 * 1024 * 9]);
        let (value, grad) = (values(), values());
        let burn_adam = burn::optim::AdamConfig::new()
            .init::<FlexAutodiff, burn::nn::Linear<FlexAutodiff>>()
            .optim()
            .clone();
        let burn = time(3, || {
            let state = None;
            let _ = burn::optim::SimpleOptimizer::step(
                &burn_adam,
                1e-3,
                value.clone(),
                grad.clone(),
                state,
            );
        });
        let ours = time(3, || {
            let _ = step(&constants, 1e-3, value.clone(), grad.clone(), None);
        });
        report(name, burn, ours);
    }
}
