#!/usr/bin/env bash
# Fifth session, call 3: greedy chains in graphs of 8 steps; the output matrix persisting in L2
# (experiment) — correctness, then A/B.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax --nocapture 2>&1 | tail -2
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,3,8,9,64 --ctx 700 --dtype bf16
t chain_on exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16
export TRACECHECK_GREEDY_GRAPH_STEPS=1; t chain_one exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16; unset TRACECHECK_GREEDY_GRAPH_STEPS
export TRACECHECK_L2_PERSIST_MB=40; t chain_l2 exact dummy:smollm2-135m 300 4 --batches 1,8 --ctx 200 --dtype bf16; unset TRACECHECK_L2_PERSIST_MB
export TRACECHECK_CUDA_GRAPHS=0; t chain_off exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16; unset TRACECHECK_CUDA_GRAPHS
python3 - /root/inv_chain /root/chain_on /root/chain_one /root/chain_l2 /root/chain_off <<'PY'
import json, os, sys, glob
def gens(d):
    out = {}
    for rj in glob.glob(os.path.join(d, "*", "run.json")):
        r = json.load(open(rj)); b = r["config"]["batch"]; off = r["config"]["prompt_offset"]
        for i, g in enumerate(r["tokens"]["generated"]):
            out.setdefault(off + i, {})[b] = tuple(g)
    return out
for d in sys.argv[1:]:
    g = gens(d); bad = [k for k, v in g.items() if len(set(v.values())) > 1]
    print("%s: %d prompts, %d disagree across batches" % (os.path.basename(d), len(g), len(bad)))
off = gens(sys.argv[5])
for d in sys.argv[2:5]:
    on = gens(d)
    print("%s vs chain_off: %d pairs, %d differ" % (os.path.basename(d), sum(len(v) for v in on.values()), sum(1 for k, v in on.items() for b, x in v.items() if off.get(k, {}).get(b) != x)))
PY
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x512,8x512,1x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 120 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic\|^L2" | awk -F'|' '{print $3, $4, $9, $11}'; }
for i in 1 2; do
ab steps1 TRACECHECK_GREEDY_GRAPH_STEPS=1
ab steps8 TRACECHECK_GREEDY_GRAPH_STEPS=8
ab steps8_l2_30 TRACECHECK_GREEDY_GRAPH_STEPS=8 TRACECHECK_L2_PERSIST_MB=30
ab steps8_l2_48 TRACECHECK_GREEDY_GRAPH_STEPS=8 TRACECHECK_L2_PERSIST_MB=48
done
CFG=8x8192 ab b8_8k_steps8
CFG=8x8192 ab b8_8k_steps8_l2_30 TRACECHECK_L2_PERSIST_MB=30
