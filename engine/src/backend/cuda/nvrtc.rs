//! Run-time compilation of the CUDA kernels with NVRTC.
//!
//! The `.cu` files under `kernels/` are embedded in the binary; `TRACECHECK_KERNEL_DIR` points
//! at a directory holding the same file names to change kernels without a rebuild. Each file
//! is one NVRTC program (with `common.cuh` given as a named header) compiled to a CUBIN for the
//! device's own architecture (`sm_90` on Hopper, from the compute capability), with
//! `--fmad=false` (a multiply and an add are never contracted behind the code's back) and
//! IEEE division and square root. Results are cached per process.
//!
//! NVRTC 13 has no built-in `cuda_bf16.h`: the CUDA include directory is passed explicitly,
//! found from `TRACECHECK_CUDA_INCLUDE`, `CUDA_HOME`, `CUDA_PATH`, `/usr/local/cuda`, or the
//! PyPI wheels' layout (`site-packages/nvidia/cu13/include`, `…/nvidia/cuda_runtime/include`,
//! `…/nvidia/cuda_nvrtc/include`), located beside the loaded `libnvrtc` or the
//! `LD_LIBRARY_PATH` entries.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::sys as nv;
use cudarc::nvrtc::Ptx;

use crate::backend::BackendError;

/// Where kernels may be read from instead of the embedded copies.
pub const KERNEL_DIR_ENV: &str = "TRACECHECK_KERNEL_DIR";
/// An explicit CUDA include directory (one holding `cuda_bf16.h`).
pub const INCLUDE_ENV: &str = "TRACECHECK_CUDA_INCLUDE";

/// The shared header every program includes.
pub const HEADER: (&str, &str) = ("common.cuh", include_str!("kernels/common.cuh"));

/// Every kernel file (one NVRTC program each), embedded.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("embed.cu", include_str!("kernels/embed.cu")),
    ("rmsnorm.cu", include_str!("kernels/rmsnorm.cu")),
    ("matmul.cu", include_str!("kernels/matmul.cu")),
    ("fast.cu", include_str!("kernels/fast.cu")),
    ("argmax.cu", include_str!("kernels/argmax.cu")),
    (
        "attention_flash.cu",
        include_str!("kernels/attention_flash.cu"),
    ),
    (
        "attention_naive.cu",
        include_str!("kernels/attention_naive.cu"),
    ),
    (
        "attention_flash_tc.cu",
        include_str!("kernels/attention_flash_tc.cu"),
    ),
];

/// A compiled program: the CUBIN and the NVRTC log (warnings).
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

type Cache = Mutex<HashMap<(String, String), Arc<Compiled>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Fails with a usage error (exit 2) when the NVRTC library cannot be loaded; cudarc would
/// panic at the first call otherwise.
pub fn probe() -> Result<(), BackendError> {
    // SAFETY: only tries to open the library by its candidate names.
    if unsafe { nv::is_culib_present() } {
        Ok(())
    } else {
        Err(BackendError::Usage(
            "--backend cuda: the NVRTC library (libnvrtc.so) was not found: install the CUDA toolkit or the `nvidia-cuda-nvrtc` wheel and put its lib directory on LD_LIBRARY_PATH (e.g. /usr/local/cuda/lib64)".into(),
        ))
    }
}

/// NVRTC's version (major, minor).
pub fn version() -> Result<(i32, i32), BackendError> {
    probe()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters.
    check(
        unsafe { nv::nvrtcVersion(&mut major, &mut minor) },
        "nvrtcVersion",
    )?;
    Ok((major, minor))
}

/// The architecture name NVRTC compiles for, from a compute capability: (9, 0) → `sm_90`.
pub fn arch_name(major: i32, minor: i32) -> String {
    format!("sm_{major}{minor}")
}

/// The kernel sources: (file name, text) for the header and every program, embedded or from
/// `TRACECHECK_KERNEL_DIR` (which must then hold every file).
pub fn sources() -> Result<(String, Vec<(String, String)>), BackendError> {
    match std::env::var_os(KERNEL_DIR_ENV).filter(|v| !v.is_empty()) {
        None => Ok((
            HEADER.1.to_string(),
            PROGRAMS
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )),
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name)).map_err(|e| {
                    BackendError::Usage(format!(
                        "{KERNEL_DIR_ENV}={}: cannot read {name}: {e}",
                        dir.display()
                    ))
                })
            };
            let header = read(HEADER.0)?;
            let mut progs = Vec::new();
            for (name, _) in PROGRAMS {
                progs.push((name.to_string(), read(name)?));
            }
            Ok((header, progs))
        }
    }
}

/// Compiles `file` for `arch` (cached per process) and loads it into `ctx`.
pub fn load_module(
    ctx: &Arc<CudaContext>,
    file: &str,
    arch: &str,
) -> Result<Arc<CudaModule>, BackendError> {
    let c = compile(file, arch)?;
    ctx.load_module(Ptx::from_binary(c.cubin.clone()))
        .map_err(|e| super::memory::dev(&format!("loading {file}"), e))
}

/// Compiles one program (by file name) for `arch`, once per process.
pub fn compile(file: &str, arch: &str) -> Result<Arc<Compiled>, BackendError> {
    let key = (file.to_string(), arch.to_string());
    if let Some(c) = cache().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let (header, progs) = sources()?;
    let src = progs
        .iter()
        .find(|(n, _)| n == file)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| BackendError::Device(format!("no kernel file {file}")))?;
    let compiled = Arc::new(compile_source(file, &src, &header, arch)?);
    if let Ok(mut m) = cache().lock() {
        m.insert(key, compiled.clone());
    }
    Ok(compiled)
}

/// Compiles every program for `arch`; returns (file, CUBIN size, log) for each.
pub fn compile_all(arch: &str) -> Result<Vec<(String, usize, String)>, BackendError> {
    PROGRAMS
        .iter()
        .map(|(name, _)| {
            let c = compile(name, arch)?;
            Ok((name.to_string(), c.cubin.len(), c.log.clone()))
        })
        .collect()
}

/// The options every program is compiled with.
pub fn options(arch: &str) -> Vec<String> {
    let mut o = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        // The order of every multiply and add is the code's: no contraction into FMA.
        "--fmad=false".to_string(),
        "--ftz=false".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
    ];
    for dir in include_dirs() {
        o.push(format!("--include-path={}", dir.display()));
    }
    o
}

fn compile_source(
    name: &str,
    src: &str,
    header: &str,
    arch: &str,
) -> Result<Compiled, BackendError> {
    probe()?;
    let c = |s: &str| {
        CString::new(s).map_err(|_| BackendError::Device(format!("{name}: NUL in source")))
    };
    let (src_c, name_c) = (c(src)?, c(name)?);
    let (hdr_c, hdr_name_c) = (c(header)?, c(HEADER.0)?);
    let headers = [hdr_c.as_ptr()];
    let header_names = [hdr_name_c.as_ptr()];
    let mut prog: nv::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer is a live NUL-terminated string for the duration of the call.
    check(
        unsafe {
            nv::nvrtcCreateProgram(
                &mut prog,
                src_c.as_ptr(),
                name_c.as_ptr(),
                1,
                headers.as_ptr(),
                header_names.as_ptr(),
            )
        },
        "nvrtcCreateProgram",
    )?;
    let prog = Program(prog);
    let opts = options(arch);
    let opts_c: Vec<CString> = opts.iter().map(|o| c(o)).collect::<Result<_, _>>()?;
    let opt_ptrs: Vec<*const c_char> = opts_c.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `prog` is live; the option pointers outlive the call.
    let res = unsafe { nv::nvrtcCompileProgram(prog.0, opt_ptrs.len() as i32, opt_ptrs.as_ptr()) };
    let log = program_log(prog.0);
    if res != nv::nvrtcResult::NVRTC_SUCCESS {
        let includes = include_dirs();
        let hint = if includes.is_empty() {
            format!(
                "\nno CUDA include directory with cuda_bf16.h was found (NVRTC 13 has none built in): set CUDA_HOME, or {INCLUDE_ENV}=DIR, or install the `nvidia-cuda-runtime` wheel; looked in: {}",
                include_candidates()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        return Err(BackendError::Device(format!(
            "NVRTC failed to compile {name} for {arch} ({res:?}), options {opts:?}:\n{log}{hint}"
        )));
    }
    let mut size = 0usize;
    // SAFETY: out-parameter; then a buffer of exactly that size.
    check(
        unsafe { nv::nvrtcGetCUBINSize(prog.0, &mut size) },
        "nvrtcGetCUBINSize",
    )?;
    let mut cubin = vec![0u8; size];
    check(
        unsafe { nv::nvrtcGetCUBIN(prog.0, cubin.as_mut_ptr() as *mut c_char) },
        "nvrtcGetCUBIN",
    )?;
    Ok(Compiled { cubin, log })
}

struct Program(nv::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram, destroyed once.
        unsafe {
            nv::nvrtcDestroyProgram(&mut self.0);
        }
    }
}

fn program_log(prog: nv::nvrtcProgram) -> String {
    let mut size = 0usize;
    // SAFETY: out-parameter, then a buffer of that size.
    if unsafe { nv::nvrtcGetProgramLogSize(prog, &mut size) } != nv::nvrtcResult::NVRTC_SUCCESS
        || size == 0
    {
        return String::new();
    }
    let mut buf = vec![0u8; size];
    if unsafe { nv::nvrtcGetProgramLog(prog, buf.as_mut_ptr() as *mut c_char) }
        != nv::nvrtcResult::NVRTC_SUCCESS
    {
        return String::new();
    }
    CStr::from_bytes_until_nul(&buf)
        .map(|s| s.to_string_lossy().trim().to_string())
        .unwrap_or_default()
}

fn check(res: nv::nvrtcResult, what: &str) -> Result<(), BackendError> {
    if res == nv::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(BackendError::Device(format!("{what}: {res:?}")))
    }
}

/// The include directories passed to NVRTC: the first candidate holding `cuda_bf16.h`.
pub fn include_dirs() -> Vec<PathBuf> {
    include_candidates()
        .into_iter()
        .find(|d| d.join("cuda_bf16.h").is_file())
        .into_iter()
        .collect()
}

/// Where the CUDA headers are looked for, in order.
pub fn include_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env(INCLUDE_ENV) {
        c.push(d);
    }
    for k in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(d) = env(k) {
            c.push(d.join("include"));
        }
    }
    c.push(PathBuf::from("/usr/local/cuda/include"));
    // Beside the libraries: the loaded libnvrtc, then LD_LIBRARY_PATH (toolkit `lib64` →
    // `include`; wheels `nvidia/cu13/lib` → `nvidia/cu13/include`, `nvidia/cuda_nvrtc/lib` →
    // `nvidia/cuda_runtime/include`).
    let mut lib_dirs: Vec<PathBuf> = loaded_nvrtc_dir().into_iter().collect();
    if let Some(p) = std::env::var_os("LD_LIBRARY_PATH") {
        lib_dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    for lib in lib_dirs {
        if let Some(parent) = lib.parent() {
            c.push(parent.join("include"));
            if let Some(nvidia) = parent.parent() {
                c.extend(wheel_includes(nvidia));
            }
        }
    }
    // Python environments: the active virtualenv / conda prefix, then the system's.
    let mut prefixes: Vec<PathBuf> = ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(|k| env(k))
        .collect();
    prefixes.extend([PathBuf::from("/usr/local"), PathBuf::from("/usr")]);
    if let Some(home) = env("HOME") {
        prefixes.push(home.join(".local"));
    }
    for prefix in prefixes {
        for site in site_packages(&prefix) {
            c.extend(wheel_includes(&site.join("nvidia")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    c.retain(|p| seen.insert(p.clone()));
    c
}

fn wheel_includes(nvidia: &Path) -> Vec<PathBuf> {
    ["cu13", "cu12", "cuda_runtime", "cuda_nvrtc"]
        .iter()
        .map(|s| nvidia.join(s).join("include"))
        .collect()
}

fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let lib = prefix.join("lib");
    if let Ok(rd) = std::fs::read_dir(&lib) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("python3") {
                out.push(e.path().join("site-packages"));
                out.push(e.path().join("dist-packages"));
            }
        }
    }
    out.push(lib.join("python3").join("dist-packages"));
    out
}

/// The directory of the libnvrtc this process loaded (Linux: /proc/self/maps).
fn loaded_nvrtc_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("libnvrtc"))
        })
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}
