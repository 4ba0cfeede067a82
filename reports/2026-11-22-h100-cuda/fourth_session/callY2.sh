#!/usr/bin/env bash
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin4; R=$OUT
t() { local n=$1 pol=$2 m=$3; shift 3; timeout 150 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 8 --span 4 --out /root/$n --timeout 120 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
ab() { echo "-- $1"; local bin=$2; shift 2; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 120 $B/$bin 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $9}'; }
t inv_bf16 exact dummy:smollm2-135m --batches 1,2,8,64 --ctx 600 --dtype bf16
for i in 1 2; do
ab par cuda_speed X=1
ab prev cuda_speed_prev X=1
done
TRACECHECK_BENCH_REPEATS=5 timeout 200 $B/cuda_speed > $R/bench_smol.txt 2>&1; grep "^| " $R/bench_smol.txt
