#!/usr/bin/env bash
# Sixth session, call 2: the K/V prefetch as per-line prefetch.global.L2 (plain, evict_last)
# instead of the bulk prefetch, which made every step slower (call 1).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,1x8192,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
ab off TRACECHECK_KV_PREFETCH_MB=0
ab line16 TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KERNEL_DIR=$B/kdir_line
ab lineel16 TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KERNEL_DIR=$B/kdir_lineel
ab line16_gate TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KV_PREFETCH_AT=1 TRACECHECK_KERNEL_DIR=$B/kdir_line
ab line32 TRACECHECK_KV_PREFETCH_MB=32 TRACECHECK_KERNEL_DIR=$B/kdir_line
