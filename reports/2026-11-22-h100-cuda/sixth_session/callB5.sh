#!/usr/bin/env bash
# Sixth session, call 5: grouped decode attention (every split of a short context in one
# block, merged there) — bench A/B against the cluster merge, then correctness.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x224,1x300,1x512,8x512,1x8192,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
ab grouped
ab cluster TRACECHECK_FLASH_GROUP_MAX=0
ab grouped_rows4 TRACECHECK_FLASH_GROUP_ROWS=4
ab grouped2
date +%T
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,3,8,9,64 --ctx 700 --dtype bf16
t inv300 exact dummy:smollm2-135m 16 4 --batches 1,2,5,8 --ctx 300 --dtype bf16
t tiny exact tiny 16 4 --batches 1,2,5,8 --ctx 700 --dtype bf16
t llama exact dummy:llama3-8b 8 4 --batches 1,2 --ctx 300 --dtype bf16
t fast_bf16 bf16 dummy:smollm2-135m 20 4 --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
date +%T
