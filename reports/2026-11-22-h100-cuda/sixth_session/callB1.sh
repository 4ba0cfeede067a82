#!/usr/bin/env bash
# Sixth session, call 1: the next layer's K/V pulled into L2 by a decode matmul (budget sweep,
# which matmul issues it), the QKV kernel's early trigger (kernel-dir variant); correctness.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax 2>&1 | grep "test result"
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,1x8192,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
date +%T
ab off TRACECHECK_KV_PREFETCH_MB=0
date +%T
ab 16MB_o TRACECHECK_KV_PREFETCH_MB=16
ab 8MB_o TRACECHECK_KV_PREFETCH_MB=8
ab 32MB_o TRACECHECK_KV_PREFETCH_MB=32
ab 16MB_gate TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KV_PREFETCH_AT=1
ab 16MB_down TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KV_PREFETCH_AT=2
ab early_off TRACECHECK_KV_PREFETCH_MB=0 TRACECHECK_KERNEL_DIR=$B/kdir_early
ab early_16MB_o TRACECHECK_KV_PREFETCH_MB=16 TRACECHECK_KERNEL_DIR=$B/kdir_early
ab off_again TRACECHECK_KV_PREFETCH_MB=0
date +%T
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,3,8,9,64 --ctx 700 --dtype bf16
( export TRACECHECK_KERNEL_DIR=$B/kdir_early; t inv_early exact dummy:smollm2-135m 40 4 --batches 1,2,8,9 --ctx 700 --dtype bf16 )
date +%T
