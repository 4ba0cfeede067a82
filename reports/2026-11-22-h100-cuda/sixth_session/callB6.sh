#!/usr/bin/env bash
# Sixth session, call 6: grouped decode attention limited to 2 splits (3 were slower: call 5);
# which batch sizes it pays at; the decode form at batch 4/8 ctx 8192 now that its block needs
# 73 KB (3 per SM); correctness of the default.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x300,4x300,8x300,1x512,8x512,1x8192,4x8192,8x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
ab grouped2
ab grouped2_rows1 TRACECHECK_FLASH_GROUP_ROWS=1
ab off TRACECHECK_FLASH_GROUP_MAX=0
ab dec_all TRACECHECK_FLASH_DEC_BLOCKS=100000
ab grouped2_again
date +%T
t inv300 exact dummy:smollm2-135m 24 4 --batches 1,2,3,5,8,9 --ctx 300 --dtype bf16
t inv_chain exact dummy:smollm2-135m 24 4 --batches 1,2,8,9 --ctx 700 --dtype bf16
t tiny exact tiny 16 4 --batches 1,2,5,8 --ctx 300 --dtype bf16
date +%T
