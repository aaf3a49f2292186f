//! burn-cuda tensors' device memory as cuDNN and cuBLAS take it, and the ordering of a library
//! call with cubecl's own work.
//!
//! cubecl-cuda 0.10 launches on per-thread non-blocking streams that it does not expose, and
//! submits through a device thread. The supported way to order a foreign call is a wait on
//! both sides ([`Call::run`]): cubecl's queue is synchronised after the operands and outputs
//! are allocated, the call runs on this crate's own stream, and that stream is synchronised
//! before the tensors go back to burn. The buffers' handles are held for the whole call, so
//! cubecl's allocator cannot hand their memory to anything else meanwhile.

use std::marker::PhantomData;
use std::sync::Arc;

use burn::tensor::{DType, Shape};
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::future::block_on;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice, SyncOnDrop};

/// The float primitive of [`Gpu`](crate::Gpu).
pub(crate) type Primitive = CubeTensor<CudaRuntime>;

/// `tensor` with packed row-major strides (a copy only if it is a strided view).
pub(crate) fn contiguous(tensor: Primitive) -> Primitive {
    into_contiguous(tensor)
}

/// The dimensions of a 3- or 4-dimensional primitive.
pub(crate) fn dims<const D: usize>(tensor: &Primitive) -> [usize; D] {
    tensor.meta.shape().dims::<D>()
}

/// A new packed tensor of `shape` on `like`'s device, in `dtype`, its values unset.
pub(crate) fn empty_like<const D: usize>(
    like: &Primitive,
    shape: [usize; D],
    dtype: DType,
) -> Primitive {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::new(shape),
        dtype,
    )
}

/// A library call's device memory: device pointers of packed tensors (and of a workspace),
/// held until the call has finished on the GPU.
pub(crate) struct Call<'a> {
    tensors: Vec<&'a Primitive>,
    workspace_bytes: usize,
}

impl<'a> Call<'a> {
    /// A call reading and writing `tensors` (each packed, [`contiguous`]).
    pub(crate) fn on(tensors: Vec<&'a Primitive>) -> Self {
        Self {
            tensors,
            workspace_bytes: 0,
        }
    }

    /// With a scratch buffer of `bytes` for the library.
    pub(crate) fn with_workspace(mut self, bytes: usize) -> Self {
        self.workspace_bytes = bytes;
        self
    }

    /// Runs `launch` on `stream` with the tensors' pointers (in the order given) and the
    /// workspace's, after cubecl's pending work and before its next.
    pub(crate) fn run<T, E: std::fmt::Debug>(
        self,
        stream: &Arc<CudaStream>,
        launch: impl FnOnce(&[Raw<u8>], Option<Raw<u8>>) -> Result<T, E>,
    ) -> T {
        let first = self.tensors[0];
        let client = &first.client;
        let workspace = (self.workspace_bytes > 0).then(|| client.empty(self.workspace_bytes));
        let resources: Vec<_> = self
            .tensors
            .iter()
            .map(|tensor| {
                client
                    .get_resource(tensor.handle.clone())
                    .expect("a live tensor's memory")
            })
            .collect();
        let workspace_resource = workspace.as_ref().map(|handle| {
            client
                .get_resource(handle.clone())
                .expect("a fresh workspace's memory")
        });
        let raws: Vec<Raw<u8>> = resources
            .iter()
            .zip(&self.tensors)
            .map(|(resource, tensor)| {
                let bytes = tensor.meta.shape().num_elements() * tensor.dtype.size();
                Raw::new(resource.resource().ptr, bytes, stream)
            })
            .collect();
        let workspace_raw = workspace_resource
            .as_ref()
            .map(|resource| Raw::new(resource.resource().ptr, self.workspace_bytes, stream));
        block_on(client.sync()).expect("cubecl's queue synchronises before a library call");
        let result = launch(&raws, workspace_raw).expect("a cuDNN/cuBLAS call on valid operands");
        stream
            .synchronize()
            .expect("the library call finishes on the GPU");
        drop((resources, workspace_resource, workspace));
        result
    }
}

/// Device memory that cubecl owns, typed for cudarc's calls, which read its pointer and never
/// free it.
pub(crate) struct Raw<T> {
    ptr: CUdeviceptr,
    len: usize,
    stream: Arc<CudaStream>,
    element: PhantomData<T>,
}

impl<T> Raw<T> {
    fn new(ptr: CUdeviceptr, len: usize, stream: &Arc<CudaStream>) -> Self {
        Self {
            ptr,
            len,
            stream: stream.clone(),
            element: PhantomData,
        }
    }

    /// The same memory seen as elements of `U` (`len` then counts bytes / size of `U`).
    pub(crate) fn typed<U>(&self) -> Raw<U> {
        Raw {
            ptr: self.ptr,
            len: self.len * size_of::<T>() / size_of::<U>().max(1),
            stream: self.stream.clone(),
            element: PhantomData,
        }
    }
}

impl<T> DeviceSlice<T> for Raw<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

// Ordering is [`Call::run`]'s, so cudarc's per-buffer events are not needed.
impl<T> DevicePtr<T> for Raw<T> {
    fn device_ptr<'a>(&'a self, _stream: &'a CudaStream) -> (CUdeviceptr, SyncOnDrop<'a>) {
        (self.ptr, SyncOnDrop::Sync(None))
    }
}

impl<T> DevicePtrMut<T> for Raw<T> {
    fn device_ptr_mut<'a>(&'a mut self, _stream: &'a CudaStream) -> (CUdeviceptr, SyncOnDrop<'a>) {
        (self.ptr, SyncOnDrop::Sync(None))
    }
}
