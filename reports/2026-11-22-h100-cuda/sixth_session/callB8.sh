#!/usr/bin/env bash
# Sixth session, call 8: after the review (the merge choice moved into flash_tc::split_merge,
# unit-tested; no kernel change): bits against the engine of 0e70210 (golden drift), exactness,
# and the bench rows the grouped attention changes.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
g() { local n=$1 m=$2; shift 2
  for v in old new; do
    local e=$B/tracecheck-engine; [ $v = old ] && e=$B/old/tracecheck-engine
    timeout 280 $B/tracecheck run --mode b3_81 --backend cuda --model $m --gen 12 --span 8 --out /root/${v}_$n --timeout 250 --engine $e "$@" > /root/${v}_$n.log 2>&1 || { echo "$v $n run failed"; tail -3 /root/${v}_$n.log; }
  done
  $B/tracecheck bless --traces-dir /root/old_$n --golden /root/golden_$n --yes > /root/bless_$n.log 2>&1 || { echo "bless $n failed"; tail -3 /root/bless_$n.log; }
  $B/tracecheck bless --traces-dir /root/new_$n --golden /root/golden_$n > /root/drift_$n.md 2>&1
  echo "$n: $(grep -c '| all |' /root/drift_$n.md) cells bit-identical to the old engine, $(grep -c '| no |' /root/drift_$n.md) not"
  $B/tracecheck analyze --mode b3_81 --traces-dir /root/new_$n --gate PASS_EQUIV --policy exact > /root/an_$n.log 2>&1; echo "  gate exact rc $?: $(grep 'cells:' /root/an_$n.log)"
}
g s300 dummy:smollm2-135m --batches 1,2,3,4,8,9 --ctx 300 --dtype bf16
g s700 dummy:smollm2-135m --batches 1,2,4,8,9 --ctx 700 --dtype bf16
g tiny300 tiny --batches 1,2,5,8 --ctx 300 --dtype bf16
TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=1x300,4x300,8x300,1x512,8x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'
