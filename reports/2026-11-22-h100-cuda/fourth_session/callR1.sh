#!/usr/bin/env bash
# Review commit (host-side launch selection tidied): correctness + bench sanity.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
t() { local n=$1 pol=$2 m=$3; shift 3; timeout 150 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 8 --span 4 --out /root/$n --timeout 120 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_bf16_short exact dummy:smollm2-135m --batches 1,2,3,4,8,9,64 --ctx 700 --dtype bf16
t inv_bf16_1100 exact dummy:smollm2-135m --batches 1,2,8 --ctx 1100 --dtype bf16
t fast_bf16 bf16 dummy:smollm2-135m --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=1x512,8x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 90 $B/cuda_speed 2>&1 | grep "^| inv"
