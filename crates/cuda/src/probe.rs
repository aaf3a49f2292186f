//! Whether a GPU can run a kernel.

use burn::tensor::Tensor;

/// Checks that GPU `index` runs a test kernel (a sum of four ones). burn-cuda loads the driver at
/// run time and panics when it is missing; this looks for the driver library first, then catches
/// a panic (with the default hook's report silenced), and says what failed in one line.
pub fn probe(index: usize) -> Result<(), String> {
    let driver_found = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]
        .iter()
        // SAFETY: loading the CUDA driver runs only its own initialisers, as burn-cuda would.
        .any(|name| unsafe { libloading::Library::new(name) }.is_ok());
    if !driver_found {
        return Err("no CUDA driver on this machine (libcuda could not be loaded)".into());
    }
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| {
        let device = burn_cuda::CudaDevice::new(index);
        let ones = Tensor::<burn_cuda::Cuda, 1>::ones([4], &device);
        ones.sum().into_scalar()
    });
    std::panic::set_hook(previous_hook);
    match result {
        Ok(4.0) => Ok(()),
        Ok(sum) => Err(format!(
            "a test kernel on GPU {index} returned {sum}, not 4"
        )),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            Err(format!(
                "GPU {index} failed a test kernel ({})",
                first_sentence(message)
            ))
        }
    }
}

/// Driver errors can run to many lines (library search paths); the first line says enough.
fn first_sentence(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.find(" - ") {
        Some(cut) => line[..cut].to_string(),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_are_cut_to_their_first_sentence() {
        let message = "Unable to find libcuda - searched in /usr/lib:/lib\nmore";
        assert_eq!(first_sentence(message), "Unable to find libcuda");
    }
}
