#!/usr/bin/env bash
# Fifth session, call 4: the committed code — correctness set, full bench (both numerics, then
# Llama-3-8B); keeps the binaries and model part 0 under /root for the report runs.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
mkdir -p /root/keep && cp -r .dev/bin3 /root/keep/ && cp .dev/m1/part00 /root/keep/
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax --nocapture 2>&1 | tail -2
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_chain exact dummy:smollm2-135m 40 4 --batches 1,2,3,4,8,9,64 --ctx 700 --dtype bf16
t inv_1100 exact dummy:smollm2-135m 20 4 --batches 1,2,8,9 --ctx 1100 --dtype bf16
t tiny_bf16 exact tiny 20 4 --batches 1,2,5,8 --ctx 700 --dtype bf16
t inv_f32 exact dummy:smollm2-135m 20 4 --batches 1,3 --ctx 300 --dtype f32
t fast_bf16 bf16 dummy:smollm2-135m 20 4 --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
t llama_bf16 exact dummy:llama3-8b 12 4 --batches 1 --ctx 300 --dtype bf16
python3 - /root/inv_chain /root/inv_1100 /root/tiny_bf16 /root/inv_f32 <<'PY'
import json, os, sys, glob
for d in sys.argv[1:]:
    g = {}
    for rj in glob.glob(os.path.join(d, "*", "run.json")):
        r = json.load(open(rj)); off = r["config"]["prompt_offset"]
        for i, x in enumerate(r["tokens"]["generated"]):
            g.setdefault(off + i, set()).add(tuple(x))
    print("%s: %d prompts, %d disagree across batches" % (os.path.basename(d), len(g), sum(len(v) > 1 for v in g.values())))
PY
timeout 240 $B/cuda_speed > $R/cuda_speed.txt 2> $R/cuda_speed.err; echo "bench rc $?"
grep "^|" $R/cuda_speed.txt
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 TRACECHECK_BENCH_REPEATS=3 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed > $R/cuda_speed_llama3.txt 2>&1; grep "^| inv\|rror" $R/cuda_speed_llama3.txt
