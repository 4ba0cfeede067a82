#!/usr/bin/env bash
# Sixth session, call 12: the cluster merge by push (each block stores its split state into
# rank 0's inbox and leaves; one barrier, only rank 0 waits) against the pull merge of ab6c671
# (its kernels via TRACECHECK_KERNEL_DIR=kdir_pull; the host is the same); bits by golden drift.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3; R=$OUT
ab() { echo "-- $1"; shift; env "$@" TRACECHECK_BENCH_REPEATS=5 TRACECHECK_BENCH_CONFIGS=${CFG:-1x224,1x512,4x512,1x700,1x8192} TRACECHECK_BENCH_NUMERICS=invariant timeout 150 $B/cuda_speed 2>&1 | grep "^| inv\|rror\|anic" | awk -F'|' '{print $3, $4, $8, $9, $10}'; }
g() { local n=$1 m=$2; shift 2
  for v in old new; do
    local e=$B/tracecheck-engine; [ $v = old ] && e=$B/old/tracecheck-engine
    timeout 280 $B/tracecheck run --mode b3_81 --backend cuda --model $m --out /root/${v}_$n --timeout 250 --engine $e "$@" > /root/${v}_$n.log 2>&1 || { echo "$v $n run failed"; tail -3 /root/${v}_$n.log; }
  done
  $B/tracecheck bless --traces-dir /root/old_$n --golden /root/golden_$n --yes > /root/bless_$n.log 2>&1 || { echo "bless $n failed"; tail -3 /root/bless_$n.log; }
  $B/tracecheck bless --traces-dir /root/new_$n --golden /root/golden_$n > /root/drift_$n.md 2>&1
  echo "$n: $(grep -c '| all |' /root/drift_$n.md) cells bit-identical to the old engine, $(grep -c '| no |' /root/drift_$n.md) not"
  $B/tracecheck analyze --mode b3_81 --traces-dir /root/new_$n --gate PASS_EQUIV --policy exact > /root/an_$n.log 2>&1; echo "  gate exact rc $?: $(grep 'cells:' /root/an_$n.log)"
}
ab push
ab pull TRACECHECK_KERNEL_DIR=$B/kdir_pull
ab push2
ab pull2 TRACECHECK_KERNEL_DIR=$B/kdir_pull
date +%T
g s700 dummy:smollm2-135m --gen 12 --span 8 --batches 1,2,4,8,9 --ctx 700 --dtype bf16
g s100 dummy:smollm2-135m --gen 500 --span 8 --batches 1,2,4 --ctx 100 --dtype bf16
g tiny700 tiny --gen 12 --span 8 --batches 1,2,5 --ctx 700 --dtype bf16
g llama dummy:llama3-8b --gen 8 --span 4 --batches 1,2 --ctx 300 --dtype bf16
date +%T
