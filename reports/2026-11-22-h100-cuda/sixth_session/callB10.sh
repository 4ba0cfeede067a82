#!/usr/bin/env bash
# Sixth session, call 10: compute-sanitizer memcheck on one capture (ctx 100, gen 160: 2 splits
# reserved: grouped launches with a group past the row, warm_up's step at position 0
# included), the build before the grouped-attention fix and after it.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
B=$PWD/.dev/bin3
S=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer)
for v in buggy fixed; do
  e=$B/tracecheck-engine; [ $v = buggy ] && e=$B/buggy/tracecheck-engine
  echo "-- $v"
  timeout 280 $S --tool memcheck --print-limit 3 $e capture --out /root/san_$v --backend cuda --model dummy:smollm2-135m --batch 1 --ctx 100 --gen 160 --span 4 --dtype bf16 > /root/san_$v.log 2>&1; echo "rc $?"
  grep -m4 "ERROR SUMMARY\|Invalid\|out of bounds\|is out of\|Address" /root/san_$v.log
  tail -2 /root/san_$v.log
done
