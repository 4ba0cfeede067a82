#!/usr/bin/env bash
# Sixth session, call 7: the final kernels. (1) Bits unchanged: each sweep runs with the engine
# of commit 0e70210 (old/), is blessed as a golden, then runs with this build; `tracecheck
# bless` without --yes prints the drift (rows bit-identical or not). (2) Exactness gates.
# (3) The full benchmark table, both numerics, and Llama-3-8B.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TRACECHECK_REQUIRE_GPU=1 $B/cuda_argmax 2>&1 | grep "test result"
g() { local n=$1 m=$2; shift 2
  for v in old new; do
    local e=$B/tracecheck-engine; [ $v = old ] && e=$B/old/tracecheck-engine
    timeout 280 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 12 --span 8 --out /root/${v}_$n --timeout 250 --engine $e "$@" > /root/${v}_$n.log 2>&1 || { echo "$v $n run failed"; tail -3 /root/${v}_$n.log; }
  done
  $B/tracecheck bless --traces-dir /root/old_$n --golden /root/golden_$n --yes > /root/bless_$n.log 2>&1 || { echo "bless $n failed"; tail -3 /root/bless_$n.log; }
  $B/tracecheck bless --traces-dir /root/new_$n --golden /root/golden_$n > /root/drift_$n.md 2>&1
  cp /root/drift_$n.md $R/
  echo "$n: $(grep -c '| all |' /root/drift_$n.md) cells bit-identical to the old engine, $(grep -c '| no |' /root/drift_$n.md) not"
  $B/tracecheck analyze --mode b3_81 --traces-dir /root/new_$n --gate PASS_EQUIV --policy exact > /root/an_$n.log 2>&1; echo "  gate exact rc $?: $(grep 'cells:' /root/an_$n.log)"
}
date +%T
g s300 dummy:smollm2-135m --batches 1,2,3,4,8,9 --ctx 300 --dtype bf16
g s700 dummy:smollm2-135m --batches 1,2,4,8,9 --ctx 700 --dtype bf16
g s8k dummy:smollm2-135m --batches 1,2,8 --ctx 8192 --dtype bf16
g tiny300 tiny --batches 1,2,5,8 --ctx 300 --dtype bf16
g tiny700 tiny --batches 1,2,5,8 --ctx 700 --dtype bf16
g llama dummy:llama3-8b --batches 1,2 --ctx 300 --dtype bf16
date +%T
timeout 240 $B/cuda_speed > $R/cuda_speed.txt 2> $R/cuda_speed.err; echo "bench rc $?"
TRACECHECK_BENCH_MODEL=dummy:llama3-8b TRACECHECK_BENCH_CONFIGS=1x512,1x8192 TRACECHECK_BENCH_REPEATS=3 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed > $R/cuda_speed_llama3.txt 2>&1; echo "llama bench rc $?"
cat $R/cuda_speed.txt | head -12; grep "^| inv" $R/cuda_speed_llama3.txt
date +%T
