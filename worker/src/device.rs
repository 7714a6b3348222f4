//! `--device` → a Candle device and the dtype the model runs in there.
//!
//! CPU runs f32 (Candle's f16 matmul on CPU is slower than f32, and the kernels of
//! [`crate::kernels`] are f32). CUDA runs f16: Whisper was trained in f16 and the tensor cores
//! want it. CUDA exists only in builds with the `cuda` feature; elsewhere asking for it is a
//! clear error rather than a silent fallback to CPU.

pub use candle_core::{DType, Device};

/// Errors choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected cpu, cuda or cuda:N")]
    Unknown(String),
    #[error("device {0:?}: this build has no CUDA support (build with `--features cuda`)")]
    NoCuda(String),
    #[error("device {spec:?}: {source}")]
    Candle {
        spec: String,
        source: candle_core::Error,
    },
}

/// The device `spec` names (`cpu`, `cuda`, `cuda:N`) and its dtype.
pub fn open(spec: &str) -> Result<(Device, DType), DeviceError> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok((Device::Cpu, DType::F32));
    }
    let ordinal = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| DeviceError::Unknown(spec.clone()))?,
        None => return Err(DeviceError::Unknown(spec)),
    };
    cuda(&spec, ordinal)
}

#[cfg(feature = "cuda")]
fn cuda(spec: &str, ordinal: usize) -> Result<(Device, DType), DeviceError> {
    let device = Device::new_cuda(ordinal).map_err(|source| DeviceError::Candle {
        spec: spec.to_owned(),
        source,
    })?;
    Ok((device, DType::F16))
}

#[cfg(not(feature = "cuda"))]
fn cuda(spec: &str, _ordinal: usize) -> Result<(Device, DType), DeviceError> {
    Err(DeviceError::NoCuda(spec.to_owned()))
}

/// A device's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub free: u64,
    pub total: u64,
}

/// What `device` has free now: the GPU's memory on CUDA, the host's available memory on the CPU
/// (`MemAvailable` of `/proc/meminfo`). `None` where it cannot be told.
pub fn memory(device: &Device) -> Option<Memory> {
    match device {
        Device::Cpu => host_memory(),
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => {
            let (free, total) = cuda.cuda_stream().context().mem_get_info().ok()?;
            Some(Memory {
                free: free as u64,
                total: total as u64,
            })
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A short name for logs and `doctor`: `cpu`, or the GPU's product name.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => {
            let context = cuda.cuda_stream().context().clone();
            let name = context.name().unwrap_or_else(|_| "unknown GPU".into());
            format!("cuda:{} ({name})", context.ordinal())
        }
        #[allow(unreachable_patterns)]
        _ => format!("{device:?}"),
    }
}

fn host_memory() -> Option<Memory> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key))?
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    Some(Memory {
        free: kib("MemAvailable")?,
        total: kib("MemTotal")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_f32_and_bad_names_are_rejected() {
        let (device, dtype) = open("CPU").unwrap();
        assert!(device.is_cpu());
        assert_eq!(dtype, DType::F32);
        for bad in ["gpu", "cuda:x", "cuda1", ""] {
            assert!(matches!(open(bad), Err(DeviceError::Unknown(_))), "{bad}");
        }
    }

    #[test]
    fn host_memory_is_read_on_linux() {
        let memory = memory(&Device::Cpu).expect("/proc/meminfo");
        assert!(
            memory.total > 0 && memory.free <= memory.total,
            "{memory:?}"
        );
        assert_eq!(describe(&Device::Cpu), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let error = open("cuda:0").unwrap_err();
        assert!(error.to_string().contains("--features cuda"), "{error}");
    }
}
