#!/usr/bin/env bash
# Fifth session, call 5: warm_up captures the decode graphs of the reserved batch (logits and
# greedy) — correctness subset and a bench sanity run; keeps binaries + model part 0.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
mkdir -p /root/keep && cp -r .dev/bin3 /root/keep/ && cp .dev/m1/part00 /root/keep/
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,3,8,9,64 --ctx 700 --dtype bf16
t fast_bf16 bf16 dummy:smollm2-135m 20 4 --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
TRACECHECK_BENCH_CONFIGS=1x512,8x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 100 $B/cuda_speed 2>&1 | grep "^| inv\|rror"
