#!/usr/bin/env bash
# Sixth session, call 4: what the split structure costs at batch 1: contexts of one split
# (no merge) against 2-3 splits (cluster merge), and the atomic merge for comparison.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x64,1x160,1x224,1x300,1x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
ab default TRACECHECK_KV_PREFETCH_MB=0
ab atomic_merge TRACECHECK_FLASH_CLUSTER_MAX=0
ab default2 TRACECHECK_KV_PREFETCH_MB=0
