#!/usr/bin/env bash
# Sixth session, call 13: with the push merge, does grouping still beat a 2-split cluster, and
# does the cluster pay at 8 rows (merge kernel now)?
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x300,4x300,8x300,1x512,8x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
ab default
ab group_off TRACECHECK_FLASH_GROUP_MAX=0
ab self8 TRACECHECK_FUSED_MERGE_ROWS=8
ab group_off_self8 TRACECHECK_FLASH_GROUP_MAX=0 TRACECHECK_FUSED_MERGE_ROWS=8
ab default2
