#!/usr/bin/env bash
# Sixth session, call 14: with the push merge, do clusters of more than 3 splits now pay
# (the pull merge lost to the fence/atomic merge from 4 splits on)?
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x800,1x1300,1x2000,4x800,1x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
ab cluster3
ab cluster8 TRACECHECK_FLASH_CLUSTER_MAX=8
ab cluster3_again
ab cluster8_again TRACECHECK_FLASH_CLUSTER_MAX=8
