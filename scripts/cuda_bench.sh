#!/usr/bin/env bash
# The CUDA benchmark (issue 4), one call on a GPU host: SmolLM2-135M's shapes in both numerics
# at batch 1 and 8, ctx 512 and 8192, then Llama-3-8B's at batch 1. Prints the bench tables
# (Markdown) and JSON lines (see engine/benches/cuda_speed.rs for the method).
#
# Usage: scripts/cuda_bench.sh [BENCH_BINARY]
#   BENCH_BINARY: the prebuilt bench (default: the newest target/release/deps/cuda_speed-*),
#   built with `cargo bench -p tracecheck-engine --features cuda --bench cuda_speed --no-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(ls -t target/release/deps/cuda_speed-* 2>/dev/null | grep -v '\.d$' | head -1)}
[ -x "$bin" ] || { echo "cuda_bench: no bench binary (build it with --features cuda)"; exit 2; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$bin"
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 \
  TRACECHECK_BENCH_REPEATS=3 "$bin"
