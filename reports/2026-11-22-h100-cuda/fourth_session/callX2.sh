#!/usr/bin/env bash
# Timing experiments: decode matmuls reading one activation row (bandwidth bound); cluster vs atomic at 5-6 splits.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 90 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $9}'; }
ab base X=1
ab row0 TRACECHECK_KERNEL_DIR=$PWD/.dev/kx/a
ab base X=1
ab row0 TRACECHECK_KERNEL_DIR=$PWD/.dev/kx/a
CFG=1x1300,8x1300 ab clus8 X=1
CFG=1x1300,8x1300 ab atomic TRACECHECK_FLASH_CLUSTER_MAX=0
CFG=1x1300,8x1300 ab clus8 X=1
CFG=1x1300,8x1300 ab atomic TRACECHECK_FLASH_CLUSTER_MAX=0
