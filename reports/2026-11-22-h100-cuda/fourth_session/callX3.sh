#!/usr/bin/env bash
# Partial last tile before the wait + cluster threshold: correctness, A/B, then the full bench.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t() { local n=$1 pol=$2 m=$3; shift 3; timeout 150 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 8 --span 4 --out /root/$n --timeout 120 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512} TRACECHECK_BENCH_NUMERICS=invariant timeout 90 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $9}'; }
echo "== correctness"
t inv_bf16_short exact dummy:smollm2-135m --batches 1,2,3,8,9,64 --ctx 700 --dtype bf16
t tiny_bf16 exact tiny --batches 1,2,5,8 --ctx 700 --dtype bf16
t inv_bf16_1100 exact dummy:smollm2-135m --batches 1,2,8,9 --ctx 1100 --dtype bf16
t llama_bf16 exact dummy:llama3-8b --batches 1,2 --ctx 300 --dtype bf16
echo "== A/B"
ab new X=1
ab whole-tile TRACECHECK_KERNEL_DIR=$PWD/.dev/kx/b
ab new X=1
ab whole-tile TRACECHECK_KERNEL_DIR=$PWD/.dev/kx/b
CFG=1x800,8x800 ab clus8 X=1
CFG=1x800,8x800 ab clus3 TRACECHECK_FLASH_CLUSTER_MAX=3
CFG=1x800,8x800 ab clus8 X=1
CFG=1x800,8x800 ab clus3 TRACECHECK_FLASH_CLUSTER_MAX=3
CFG=1x512 ab llama TRACECHECK_BENCH_MODEL=dummy:llama3-8b
CFG=1x512 ab llama-noclus TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_FLASH_CLUSTER_MAX=0
echo "== full bench"
TRACECHECK_BENCH_REPEATS=5 timeout 200 $B/cuda_speed > $R/bench_smol.txt 2>&1; tail -30 $R/bench_smol.txt
