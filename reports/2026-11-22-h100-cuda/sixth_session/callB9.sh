#!/usr/bin/env bash
# Sixth session, call 9: the review found that in a grouped launch a group whose split lies
# past the row's position computed a negative first tile and could zero-fill another group's
# K rows (decode positions < 256 with 2 splits reserved). Fixed; this checks exactly that case
# (ctx 100, chains to position 299: 2 splits reserved, positions below and above 256) against
# the engine of 0e70210 by golden drift, plus the earlier cases and the bench rows. The build
# before the fix (buggy/) runs the new cases too, to see whether they catch it.
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
BUGGY=1 g s100 dummy:smollm2-135m --gen 200 --span 8 --batches 1,2,3,8 --ctx 100 --dtype bf16
BUGGY=1 g s240 dummy:smollm2-135m --gen 40 --span 16 --batches 1,2,8,9 --ctx 240 --dtype bf16
g tiny100 tiny --gen 200 --span 8 --batches 1,2,8 --ctx 100 --dtype bf16
g s300 dummy:smollm2-135m --gen 12 --span 8 --batches 1,2,4,8,9 --ctx 300 --dtype bf16
TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=1x300,4x300,8x300,1x512 TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'
