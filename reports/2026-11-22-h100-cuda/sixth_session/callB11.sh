#!/usr/bin/env bash
# Sixth session, call 11: does the grouped launch reach the case the fix is for? A probe
# kernel directory traps where a group past the row would have computed a negative tile: a copy
# of the kernels with, before n_pre in flash_tc_dec_body,
#   if (grouped && !reach && decode && (pos - k_begin) / FT_TILE < 0) __trap();
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3
TRACECHECK_KERNEL_DIR=$B/kdir_probe timeout 200 $B/tracecheck-engine capture --out /root/probe --backend cuda --model dummy:smollm2-135m --batch 1 --ctx 100 --gen 160 --span 4 --dtype bf16 > /root/probe.log 2>&1; echo "probe rc $?"; tail -3 /root/probe.log
TRACECHECK_KERNEL_DIR=$B/kdir_probe timeout 200 $B/tracecheck-engine capture --out /root/probe2 --backend cuda --model dummy:smollm2-135m --batch 1 --ctx 300 --gen 8 --span 4 --dtype bf16 > /root/probe2.log 2>&1; echo "probe ctx 300 rc $?"; tail -2 /root/probe2.log
