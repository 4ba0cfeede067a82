#!/usr/bin/env bash
# Fifth session, call 1: device argmax (greedy steps) — kernel test, correctness set, bench.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax --nocapture 2>&1 | tail -3
t() { local n=$1 pol=$2 m=$3; shift 3; timeout 150 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 8 --span 4 --out /root/$n --timeout 120 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_bf16_short exact dummy:smollm2-135m --batches 1,2,3,4,8,9,64 --ctx 700 --dtype bf16
t tiny_bf16 exact tiny --batches 1,2,5,8 --ctx 700 --dtype bf16
t llama_bf16 exact dummy:llama3-8b --batches 1,2 --ctx 300 --dtype bf16
t inv_f32 exact dummy:smollm2-135m --batches 1,3 --ctx 300 --dtype f32
t fast_bf16 bf16 dummy:smollm2-135m --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
# generated ids must agree across batches (greedy steps past the span chose them on the device)
python3 - /root/inv_bf16_short <<'PY'
import json, os, sys, glob
d = sys.argv[1]; gens = {}
for rj in glob.glob(os.path.join(d, "*", "run.json")):
    r = json.load(open(rj)); b = r["config"]["batch"]; off = r["config"]["prompt_offset"]
    for i, g in enumerate(r["tokens"]["generated"]):
        gens.setdefault(off + i, set()).add(tuple(g))
bad = {k: v for k, v in gens.items() if len(v) > 1}
print("generated ids: %d prompts, %d disagree across batches" % (len(gens), len(bad)))
PY
timeout 200 $B/cuda_speed > $R/cuda_speed.txt 2> $R/cuda_speed.err; echo "bench rc $?"
grep "^|" $R/cuda_speed.txt
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 TRACECHECK_BENCH_REPEATS=3 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror"
