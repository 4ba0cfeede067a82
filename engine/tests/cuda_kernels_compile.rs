//! Compiles every CUDA kernel file with NVRTC for sm_90 (Hopper) and fails on any NVRTC error,
//! printing the log. Needs no GPU, only the NVRTC library and the CUDA headers:
//!
//! ```text
//! pip install nvidia-cuda-nvrtc==13.0.* nvidia-cuda-runtime==13.0.*
//! LD_LIBRARY_PATH=$SITE/nvidia/cu13/lib cargo test -p tracecheck-engine --features cuda \
//!     --test cuda_kernels_compile -- --nocapture
//! ```
//!
//! (`$SITE` = that environment's site-packages; the include directory `nvidia/cu13/include`
//! is found beside the loaded libnvrtc, or set `CUDA_HOME` / `TRACECHECK_CUDA_INCLUDE`.)
//! Without the library the test is skipped with a note, unless `TRACECHECK_REQUIRE_NVRTC=1`,
//! which makes a missing library (or a build without `--features cuda`) a failure.

fn required() -> bool {
    std::env::var("TRACECHECK_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

#[cfg(feature = "cuda")]
#[test]
fn every_kernel_compiles_for_sm90() {
    use tracecheck_engine::backend::CudaBackend;

    let version = match CudaBackend::nvrtc_version() {
        Ok(v) => v,
        Err(e) => {
            assert!(
                !required(),
                "TRACECHECK_REQUIRE_NVRTC=1 but NVRTC is unusable: {e}"
            );
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    eprintln!(
        "NVRTC {}.{}, CUDA include dirs {:?}",
        version.0,
        version.1,
        CudaBackend::cuda_include_dirs()
    );
    match CudaBackend::compile_kernels("sm_90") {
        Ok(files) => {
            assert!(!files.is_empty());
            for (file, bytes, log) in files {
                eprintln!("  {file}: {bytes} bytes of sm_90 CUBIN");
                if !log.is_empty() {
                    eprintln!("    NVRTC log: {log}");
                }
                assert!(bytes > 0, "{file}: empty CUBIN");
            }
        }
        Err(e) => panic!("{e}"),
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn every_kernel_compiles_for_sm90() {
    assert!(
        !required(),
        "TRACECHECK_REQUIRE_NVRTC=1 but this test build has no CUDA backend (add --features cuda)"
    );
    eprintln!("SKIPPED: built without --features cuda");
}
