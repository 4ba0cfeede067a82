#!/usr/bin/env bash
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 120 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $9}'; }
for i in 1 2; do
CFG=1x300,8x300,1x600,8x600 ab clus3 TRACECHECK_FLASH_CLUSTER_MAX=3
CFG=1x300,8x300,1x600,8x600 ab atomic TRACECHECK_FLASH_CLUSTER_MAX=0
done
CFG=1x512,1x8192 ab llama TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_FLASH_CLUSTER_MAX=3
