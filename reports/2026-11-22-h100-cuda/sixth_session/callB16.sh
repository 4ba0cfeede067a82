#!/usr/bin/env bash
# Sixth session, call 16 (review of the whole change): the grouped block's and the cluster's
# fold now share ft_merge_states; bits against 0e70210 by golden drift, and the bench rows.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
g() { local n=$1 m=$2; shift 2
  for v in old new ${BUGGY:+buggy}; do
    local e=$B/tracecheck-engine; [ $v = old ] && e=$B/old/tracecheck-engine; [ $v = buggy ] && e=$B/buggy/tracecheck-engine
    timeout 280 $B/tracecheck run --mode b3_81 --backend cuda --model $m --out /root/${v}_$n --timeout 250 --engine $e "$@" > /root/${v}_$n.log 2>&1 || { echo "$v $n run failed"; tail -3 /root/${v}_$n.log; }
  done
  $B/tracecheck bless --traces-dir /root/old_$n --golden /root/golden_$n --yes > /root/bless_$n.log 2>&1 || { echo "bless $n failed"; tail -3 /root/bless_$n.log; }
  $B/tracecheck bless --traces-dir /root/new_$n --golden /root/golden_$n > /root/drift_$n.md 2>&1
  cp /root/drift_$n.md $R/
  echo "$n: $(grep -c '| all |' /root/drift_$n.md) cells bit-identical to the old engine, $(grep -c '| no |' /root/drift_$n.md) not"
  $B/tracecheck analyze --mode b3_81 --traces-dir /root/new_$n --gate PASS_EQUIV --policy exact > /root/an_$n.log 2>&1; echo "  gate exact rc $?: $(grep 'cells:' /root/an_$n.log)"
  if [ -n "$BUGGY" ]; then
    $B/tracecheck bless --traces-dir /root/buggy_$n --golden /root/golden_$n > /root/bdrift_$n.md 2>&1
    echo "  before the fix: $(grep -c '| all |' /root/bdrift_$n.md) cells bit-identical, $(grep -c '| no |' /root/bdrift_$n.md) not"
    $B/tracecheck analyze --mode b3_81 --traces-dir /root/buggy_$n --gate PASS_EQUIV --policy exact > /root/ban_$n.log 2>&1; echo "  before the fix, gate exact rc $?: $(grep 'cells:' /root/ban_$n.log)"
  fi
}
BUGGY=1 g s300 dummy:smollm2-135m --gen 12 --span 8 --batches 1,2,4,8,9 --ctx 300 --dtype bf16
g s700 dummy:smollm2-135m --gen 12 --span 8 --batches 1,2,4,8,9 --ctx 700 --dtype bf16
g tiny700 tiny --gen 12 --span 8 --batches 1,2,5 --ctx 700 --dtype bf16
TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=1x300,4x300,1x512,4x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'
