#!/usr/bin/env bash
# Sixth session, call 15: the final build (eac03c8) — exactness sweeps and the full bench.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax 2>&1 | grep "test result"
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv700 exact dummy:smollm2-135m 40 4 --batches 1,2,3,4,8,9,64 --ctx 700 --dtype bf16
t inv300 exact dummy:smollm2-135m 24 4 --batches 1,2,3,4,8,9 --ctx 300 --dtype bf16
t fast_bf16 bf16 dummy:smollm2-135m 20 4 --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
t f32 exact dummy:smollm2-135m 8 4 --batches 1,3 --ctx 300 --dtype f32
timeout 240 $B/cuda_speed > $R/cuda_speed.txt 2> $R/cuda_speed.err; echo "bench rc $?"
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 TRACECHECK_BENCH_REPEATS=3 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed > $R/cuda_speed_llama3.txt 2>&1; echo "llama bench rc $?"
head -12 $R/cuda_speed.txt; grep "^| inv" $R/cuda_speed_llama3.txt
