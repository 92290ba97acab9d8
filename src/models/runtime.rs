//! ONNX Runtime itself: the shared library is loaded at run time (`ort`'s
//! `load-dynamic`) from the `onnxruntime` / `onnxruntime-gpu` wheel that
//! `scripts/setup-models.sh` installs; `ORT_DYLIB_PATH` overrides where it is. Sessions
//! run on `auto | cpu | cuda[:N]`: `auto` uses the CUDA execution provider when it
//! registers and says so in one log line when it falls back to the CPU; `cuda` that
//! cannot register is an error with the reason.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::error::UserError;

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda(i32),
}

impl Device {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            t => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Device::Cuda)
                .ok_or_else(|| format!("device `{t}`: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The execution provider a session ended up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda(i32),
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provider::Cpu => f.write_str("CPU"),
            Provider::Cuda(n) => write!(f, "CUDA:{n}"),
        }
    }
}

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads (0: ONNX Runtime's default, one per core).
    pub threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            device: Device::Auto,
            threads: 0,
        }
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("gleaner")))
        .unwrap_or_else(|| PathBuf::from(".cache/gleaner"))
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, else the newest one in a venv that
/// `scripts/setup-models.sh` built (onnxruntime-gpu's first, then onnxruntime's).
pub fn find_library() -> Result<PathBuf, UserError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(UserError::new(format!(
                "ORT_DYLIB_PATH={} is not a file",
                p.display()
            )))
        };
    }
    let mut found: Vec<PathBuf> = Vec::new();
    let venvs = std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten();
    for venv in venvs {
        let name = venv.file_name().to_string_lossy().into_owned();
        if !name.starts_with("venv-models") {
            continue;
        }
        for lib in std::fs::read_dir(venv.path().join("lib"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let capi = lib.path().join("site-packages/onnxruntime/capi");
            for f in std::fs::read_dir(&capi).into_iter().flatten().flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if n.starts_with("libonnxruntime.so") && !n.contains("providers") {
                    found.push(f.path());
                }
            }
        }
    }
    // onnxruntime-gpu's library (it has the CUDA provider beside it) before the CPU one,
    // then the newest.
    found.sort_by_key(|p| {
        (
            p.with_file_name("libonnxruntime_providers_cuda.so")
                .is_file(),
            std::fs::metadata(p).and_then(|m| m.modified()).ok(),
        )
    });
    found.pop().ok_or_else(|| {
        UserError::new("ONNX Runtime is not installed")
            .with_hint("run `make models` (scripts/setup-models.sh), or set ORT_DYLIB_PATH to libonnxruntime.so")
    })
}

/// The CUDA libraries onnxruntime-gpu's CUDA provider links against, in load order.
const CUDA_LIBRARIES: &[&str] = &[
    "libcudart.so",
    "libcublasLt.so",
    "libcublas.so",
    "libcurand.so",
    "libcufft.so",
    "libnvrtc.so",
    "libcudnn_graph.so",
    "libcudnn_engines_precompiled.so",
    "libcudnn_engines_runtime_compiled.so",
    "libcudnn_heuristic.so",
    "libcudnn_ops.so",
    "libcudnn_cnn.so",
    "libcudnn_adv.so",
    "libcudnn.so",
];

/// Folders that may hold the CUDA libraries: `GLEANER_CUDA_LIBS` (colon-separated), then
/// the `nvidia/*/lib` folders of the venv the ONNX Runtime library came from (the
/// nvidia-* wheels `make models GPU=1` installs beside onnxruntime-gpu).
fn cuda_library_dirs(ort_lib: &Path, extra: Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    // …/site-packages/onnxruntime/capi/libonnxruntime.so.N → …/site-packages/nvidia
    if let Some(site) = ort_lib.ancestors().nth(3) {
        let mut found: Vec<PathBuf> = std::fs::read_dir(site.join("nvidia"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("lib"))
            .filter(|d| d.is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// Load the CUDA libraries by full path before the CUDA provider is registered, as
/// onnxruntime's own `preload_dlls` does: the provider asks for them by soname, and
/// the dynamic loader does not search a venv. Best effort: what is missing is left to
/// the loader's usual search, and registration says what it could not find.
fn preload_cuda_libraries(ort_lib: &Path) {
    // The CPU wheel has no CUDA provider: nothing to load libraries for.
    let provider = ort_lib.with_file_name("libonnxruntime_providers_cuda.so");
    if !provider.is_file() {
        return;
    }
    // Without the NVIDIA driver registration fails anyway; loading ~1 GB of CUDA
    // libraries first would only cost time and memory.
    // SAFETY: dlopen with a constant C string; the handle is kept (as the provider will).
    if unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) }
        .is_null()
    {
        return;
    }
    let dirs = cuda_library_dirs(ort_lib, std::env::var_os("GLEANER_CUDA_LIBS"));
    for prefix in CUDA_LIBRARIES {
        let hit = dirs.iter().find_map(|d| {
            let mut names: Vec<PathBuf> = std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix(prefix))
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .collect();
            names.sort();
            names.pop()
        });
        let Some(path) = hit else { continue };
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: dlopen with a valid C string; the handle is kept for the process's
        // lifetime on purpose (the provider uses the library until exit).
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        tracing::debug!(library = %path.display(), loaded = !handle.is_null(), "CUDA preload");
    }
}

static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
static ORT_LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment, UserError> {
    ENV.get_or_init(|| {
        let lib = find_library().map_err(|e| match e.hint {
            Some(h) => format!("{} ({h})", e.message),
            None => e.message,
        })?;
        tracing::info!(library = %lib.display(), "loading ONNX Runtime");
        let _ = ORT_LIBRARY.set(lib.clone());
        ort::init_from(&lib)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?
            .with_name("gleaner")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| UserError::new(e.clone()))
}

/// A session for `model` on the asked device.
pub fn session(model: &Path, opts: SessionOptions) -> Result<(Session, Provider), UserError> {
    let env = environment()?;
    let fail = |e: ort::Error| UserError::new(format!("{}: {e}", model.display()));
    let mut builder = Session::builder(env)
        .map_err(fail)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail(e.into()))?;
    if opts.threads > 0 {
        builder = builder
            .with_intra_threads(opts.threads)
            .map_err(|e| fail(e.into()))?;
    }
    let provider = match opts.device {
        Device::Cpu => Provider::Cpu,
        Device::Auto | Device::Cuda(_) => {
            let id = match opts.device {
                Device::Cuda(n) => n,
                _ => 0,
            };
            // TF32 off: ONNX Runtime turns it on by default, which moves MiniLM's
            // vectors by ~1e-4 from PyTorch's fp32 ones (measured on an H200).
            static PRELOAD: std::sync::Once = std::sync::Once::new();
            if let Some(lib) = ORT_LIBRARY.get() {
                PRELOAD.call_once(|| preload_cuda_libraries(lib));
            }
            let cuda = ort::ep::CUDA::default().with_device_id(id).with_tf32(false);
            match cuda.register(&mut builder) {
                Ok(()) => Provider::Cuda(id),
                Err(e) if opts.device == Device::Auto => {
                    tracing::info!(reason = %e, "CUDA execution provider unavailable; running on the CPU");
                    Provider::Cpu
                }
                Err(e) => {
                    return Err(UserError::new(format!(
                        "device cuda:{id}: the CUDA execution provider did not register: {e}"
                    ))
                    .with_hint("install onnxruntime-gpu (make models GPU=1) on a machine with an NVIDIA driver, or use device = \"cpu\""));
                }
            }
        }
    };
    let session = builder.commit_from_file(model).map_err(fail)?;
    Ok((session, provider))
}

#[cfg(test)]
mod tests {
    use super::cuda_library_dirs;

    #[test]
    fn cuda_libraries_are_looked_for_beside_the_wheel_then_in_the_venv() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.12/site-packages");
        let capi = site.join("onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for lib in ["cu13/lib", "cudnn/lib"] {
            std::fs::create_dir_all(site.join("nvidia").join(lib)).unwrap();
        }
        std::fs::create_dir_all(site.join("nvidia/empty")).unwrap(); // no lib/ inside
        let ort = capi.join("libonnxruntime.so.1.31.1");
        assert_eq!(
            cuda_library_dirs(&ort, Some("/opt/cuda/lib64:/usr/local/cuda/lib".into())),
            vec![
                "/opt/cuda/lib64".into(),
                "/usr/local/cuda/lib".into(),
                site.join("nvidia/cu13/lib"),
                site.join("nvidia/cudnn/lib"),
            ]
        );
        // A library outside a venv: only what GLEANER_CUDA_LIBS names.
        assert!(
            cuda_library_dirs(std::path::Path::new("/opt/ort/libonnxruntime.so"), None).is_empty()
        );
    }
}
