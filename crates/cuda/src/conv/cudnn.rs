//! The three passes of a convolution by cuDNN, the algorithm chosen by cuDNN's heuristics once
//! per shape and thread.

use std::ffi::c_int;

use burn::tensor::DType;
use cudarc::cudnn::sys::{cudnnConvolutionMode_t, cudnnMathType_t, cudnnTensorFormat_t};
use cudarc::cudnn::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType,
    FilterDescriptor, TensorDescriptor,
};
use half::bf16;

use super::{Conv, ConvKernels};
use crate::device::{Call, Primitive, contiguous, empty_like};
use crate::library::{Algorithm, Chosen, ConvKey, with_handles};

/// cuDNN's convolutions (f32 with TF32 tensor cores allowed, as PyTorch's default; bf16 with
/// f32 accumulation).
#[derive(Debug)]
pub(crate) struct CudnnConv;

impl ConvKernels for CudnnConv {
    fn forward(conv: &Conv, x: Primitive, w: Primitive) -> Primitive {
        let (x, w) = (contiguous(x), contiguous(w));
        let y = empty_like(&x, conv.y, x.dtype);
        launch(Pass::Forward, conv, [&x, &w, &y]);
        y
    }

    fn input_grad(conv: &Conv, dy: Primitive, w: Primitive) -> Primitive {
        let (dy, w) = (contiguous(dy), contiguous(w));
        let dx = empty_like(&dy, conv.x, dy.dtype);
        launch(Pass::InputGrad, conv, [&dx, &w, &dy]);
        dx
    }

    fn weight_grad(conv: &Conv, x: Primitive, dy: Primitive) -> Primitive {
        let (x, dy) = (contiguous(x), contiguous(dy));
        let dw = empty_like(&x, conv.w, x.dtype);
        launch(Pass::WeightGrad, conv, [&x, &dw, &dy]);
        dw
    }
}

/// Which of cuDNN's three convolution calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// One pass on `[x, w, y]` (each the gradient where the pass writes it).
fn launch(pass: Pass, conv: &Conv, tensors: [&Primitive; 3]) {
    let index = tensors[0].device.index;
    match tensors[0].dtype {
        DType::F32 => launch_typed::<f32>(pass, conv, tensors, index),
        DType::BF16 => launch_typed::<bf16>(pass, conv, tensors, index),
        other => unreachable!("the entries hand {other:?} to burn"),
    }
}

/// The scaling constants cuDNN takes in the output's type.
trait Element: CudnnDataType + Copy + 'static {
    const ONE: Self;
    const ZERO: Self;
    const BF16: bool;
}

impl Element for f32 {
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    const BF16: bool = false;
}

impl Element for bf16 {
    const ONE: Self = bf16::ONE;
    const ZERO: Self = bf16::ZERO;
    const BF16: bool = true;
}

/// The descriptors of one layer.
struct Descriptors<T> {
    conv: ConvDescriptor<f32>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
}

fn c_ints<const D: usize>(values: [usize; D]) -> [c_int; D] {
    values.map(|value| c_int::try_from(value).expect("a size cuDNN can index"))
}

/// Packed row-major strides of `dims`.
fn packed(dims: [usize; 4]) -> [c_int; 4] {
    c_ints([dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1])
}

impl<T: Element> Descriptors<T> {
    fn of(cudnn: &std::sync::Arc<Cudnn>, conv: &Conv) -> Self {
        let o = &conv.options;
        let mut descriptor = cudnn
            .create_conv2d::<f32>(
                c_ints(o.padding),
                c_ints(o.stride),
                c_ints(o.dilation),
                cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .expect("a convolution descriptor");
        let groups = c_int::try_from(o.groups).expect("a group count cuDNN takes");
        descriptor
            .set_group_count(groups)
            .expect("the convolution's groups");
        // f32: cuDNN's default math, which allows TF32 tensor cores (PyTorch's default too).
        let math = match T::BF16 {
            true => cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
            false => cudnnMathType_t::CUDNN_DEFAULT_MATH,
        };
        descriptor.set_math_type(math).expect("the math type");
        let tensor = |dims: [usize; 4]| {
            cudnn
                .create_4d_tensor_ex::<T>(c_ints(dims), packed(dims))
                .expect("a tensor descriptor")
        };
        Self {
            conv: descriptor,
            x: tensor(conv.x),
            w: cudnn
                .create_4d_filter::<T>(cudnnTensorFormat_t::CUDNN_TENSOR_NCHW, c_ints(conv.w))
                .expect("a filter descriptor"),
            y: tensor(conv.y),
        }
    }
}

fn launch_typed<T: Element>(pass: Pass, conv: &Conv, tensors: [&Primitive; 3], index: usize) {
    with_handles(index, |handles| {
        let d = Descriptors::<T>::of(&handles.cudnn, conv);
        let key = ConvKey {
            pass: pass as u8,
            bf16: T::BF16,
            shapes: [conv.x, conv.w, conv.y],
            geometry: conv.geometry(),
        };
        let (one, zero) = (T::ONE, T::ZERO);
        let call = |chosen: Chosen| Call::on(tensors.to_vec()).with_workspace(chosen.workspace);
        let stream = handles.stream.clone();
        match pass {
            Pass::Forward => {
                let op = ConvForward {
                    conv: &d.conv,
                    x: &d.x,
                    w: &d.w,
                    y: &d.y,
                };
                let chosen = *handles.chosen.entry(key).or_insert_with(|| {
                    let algorithm = op.pick_algorithm().expect("cuDNN's forward heuristics");
                    let workspace = op.get_workspace_size(algorithm).expect("a workspace size");
                    Chosen {
                        algorithm: Algorithm::Forward(algorithm),
                        workspace,
                    }
                });
                let Algorithm::Forward(algorithm) = chosen.algorithm else {
                    unreachable!("the key names the pass")
                };
                call(chosen).run(&stream, |raws, mut workspace| {
                    let (x, w, mut y) = (
                        raws[0].typed::<T>(),
                        raws[1].typed::<T>(),
                        raws[2].typed::<T>(),
                    );
                    // SAFETY: the descriptors describe these packed tensors of type T.
                    unsafe { op.launch(algorithm, workspace.as_mut(), (one, zero), &x, &w, &mut y) }
                })
            }
            Pass::InputGrad => {
                let op = ConvBackwardData {
                    conv: &d.conv,
                    dx: &d.x,
                    w: &d.w,
                    dy: &d.y,
                };
                let chosen = *handles.chosen.entry(key).or_insert_with(|| {
                    let algorithm = op.pick_algorithm().expect("cuDNN's data heuristics");
                    let workspace = op.get_workspace_size(algorithm).expect("a workspace size");
                    Chosen {
                        algorithm: Algorithm::InputGrad(algorithm),
                        workspace,
                    }
                });
                let Algorithm::InputGrad(algorithm) = chosen.algorithm else {
                    unreachable!("the key names the pass")
                };
                call(chosen).run(&stream, |raws, mut workspace| {
                    let (mut dx, w, dy) = (
                        raws[0].typed::<T>(),
                        raws[1].typed::<T>(),
                        raws[2].typed::<T>(),
                    );
                    // SAFETY: as above.
                    unsafe {
                        op.launch(algorithm, workspace.as_mut(), (one, zero), &mut dx, &w, &dy)
                    }
                })
            }
            Pass::WeightGrad => {
                let op = ConvBackwardFilter {
                    conv: &d.conv,
                    x: &d.x,
                    dw: &d.w,
                    dy: &d.y,
                };
                let chosen = *handles.chosen.entry(key).or_insert_with(|| {
                    let algorithm = op.pick_algorithm().expect("cuDNN's filter heuristics");
                    let workspace = op.get_workspace_size(algorithm).expect("a workspace size");
                    Chosen {
                        algorithm: Algorithm::WeightGrad(algorithm),
                        workspace,
                    }
                });
                let Algorithm::WeightGrad(algorithm) = chosen.algorithm else {
                    unreachable!("the key names the pass")
                };
                call(chosen).run(&stream, |raws, mut workspace| {
                    let (x, mut dw, dy) = (
                        raws[0].typed::<T>(),
                        raws[1].typed::<T>(),
                        raws[2].typed::<T>(),
                    );
                    // SAFETY: as above.
                    unsafe {
                        op.launch(algorithm, workspace.as_mut(), (one, zero), &x, &mut dw, &dy)
                    }
                })
            }
        }
    })
}
