#!/usr/bin/env bash
# Sixth session, call 3: the K/V prefetch with its lines dealt over every thread of the grid
# (calls 1-2 put all of it on the first block or two).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,1x8192,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
ab off TRACECHECK_KV_PREFETCH_MB=0
ab o4 TRACECHECK_KV_PREFETCH_MB=4
ab o16 TRACECHECK_KV_PREFETCH_MB=16
ab o32 TRACECHECK_KV_PREFETCH_MB=32
ab gate16 TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KV_PREFETCH_AT=1
ab down16 TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KV_PREFETCH_AT=2
ab off2 TRACECHECK_KV_PREFETCH_MB=0
