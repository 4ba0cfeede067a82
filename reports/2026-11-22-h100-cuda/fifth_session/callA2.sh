#!/usr/bin/env bash
# Fifth session, call 2: greedy chains on the device (decode_greedy) — kernel test, correctness
# set, chains past one round (gen 300) with graphs on vs off (the stepwise path), bench.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax --nocapture 2>&1 | tail -3
t() { local n=$1 pol=$2 m=$3 g=$4 sp=$5; shift 5; timeout 200 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen $g --span $sp --out /root/$n --timeout 150 "$@" > /root/$n.log 2>&1; rc=$?; echo "$n run rc $rc"; [ $rc = 0 ] || tail -4 /root/$n.log; $B/tracecheck analyze --mode b3_81 --traces-dir /root/$n --gate PASS_EQUIV --policy $pol > /root/$n.an 2>&1; a=$?; echo "analyze rc $a"; grep "cells:\|gate" /root/$n.an; [ $a = 0 ] || { cp /root/$n.an /root/$n.log $R/; }; }
t inv_bf16_short exact dummy:smollm2-135m 8 4 --batches 1,2,3,4,8,9,64 --ctx 700 --dtype bf16
t tiny_bf16 exact tiny 8 4 --batches 1,2,5,8 --ctx 700 --dtype bf16
t inv_f32 exact dummy:smollm2-135m 8 4 --batches 1,3 --ctx 300 --dtype f32
t fast_bf16 bf16 dummy:smollm2-135m 8 4 --batches 1,2,8 --ctx 600 --dtype bf16 --numerics fast
t chain_on exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16
export TRACECHECK_CUDA_GRAPHS=0; t chain_off exact dummy:smollm2-135m 300 4 --batches 1,2,8 --ctx 200 --dtype bf16; unset TRACECHECK_CUDA_GRAPHS
t llama_bf16 exact dummy:llama3-8b 8 4 --batches 1 --ctx 300 --dtype bf16
python3 - /root/inv_bf16_short /root/chain_on /root/chain_off <<'PY'
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
    print("%s: %d prompts, %d disagree across batches, lengths %s" % (os.path.basename(d), len(g), len(bad), sorted({len(x) for v in g.values() for x in v.values()})))
on, off = gens(sys.argv[2]), gens(sys.argv[3])
print("chain graphs on vs off: %d (prompt, batch) pairs, %d differ" % (sum(len(v) for v in on.values()), sum(1 for k, v in on.items() for b, x in v.items() if off.get(k, {}).get(b) != x)))
PY
timeout 240 $B/cuda_speed > $R/cuda_speed.txt 2> $R/cuda_speed.err; echo "bench rc $?"
grep "^|" $R/cuda_speed.txt
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 TRACECHECK_BENCH_REPEATS=3 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror"
