#!/usr/bin/env bash
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin4
lscpu | grep "Model name"
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 120 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $9}'; }
for i in 1 2; do
ab base X=1
ab nocopy TRACECHECK_EXP_LOGITS=nocopy
ab nodma TRACECHECK_EXP_LOGITS=nodma
done
