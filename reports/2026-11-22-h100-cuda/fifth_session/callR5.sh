#!/usr/bin/env bash
# Fifth session review check: host-only edits (module loading through nvrtc::load_module; the
# CUDA chain's fallback through decode_greedy_stepwise) — argmax test, chains with graphs on
# vs off, correctness subset, bench sanity.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax 2>&1 | grep "test result"
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; }
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,8,9,64 --ctx 700 --dtype bf16
t chain_on exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16
export TRACECHECK_CUDA_GRAPHS=0; t chain_off exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16; unset TRACECHECK_CUDA_GRAPHS
python3 - /root/chain_on /root/chain_off <<'PY'
import json, os, sys, glob
def gens(d):
    out = {}
    for rj in glob.glob(os.path.join(d, "*", "run.json")):
        r = json.load(open(rj)); b = r["config"]["batch"]; off = r["config"]["prompt_offset"]
        for i, g in enumerate(r["tokens"]["generated"]):
            out[(off + i, b)] = tuple(g)
    return out
on, off = gens(sys.argv[1]), gens(sys.argv[2])
print("chain graphs on vs off: %d pairs, %d differ" % (len(on), sum(off.get(k) != v for k, v in on.items())))
PY
TRACECHECK_BENCH_CONFIGS=1x512,8x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 100 $B/cuda_speed 2>&1 | grep "^| inv\|rror"
