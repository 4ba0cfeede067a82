#!/usr/bin/env bash
# CUDA backend check on a GPU host (no Rust needed): captures the same cells with
# --backend cpu and --backend cuda, gates the CUDA sweeps with `tracecheck analyze --gate
# PASS_EQUIV --policy exact` (prefill = decode and batch invariance, bit for bit), and compares
# CUDA against CPU logits (max |Δ|, top-1 agreement per cell).
#
# Usage: scripts/cuda_check.sh [MODEL]
#   MODEL: a SmolLM2 GGUF path (or any --model spec, e.g. dummy:smollm2-135m); the tiny test
#          model always runs.
# Environment:
#   BIN     directory of release binaries built with `--features cuda` (default target/release:
#           cargo build --release -p tracecheck-engine --features cuda && cargo build --release -p tracecheck)
#   OUT     where everything is written (default ./cuda_check_out)
#   CTX GEN SPAN BATCHES ATTN DTYPES   the matrix (default 128 8 8 1,2,4 flash,naive "f32 bf16")
#   NUMERICS  the CUDA sweeps' numerics (invariant; fast: bf16 only, analysed under `bf16`)
# Exit status: 0 when every CUDA sweep passes its gate, every f32 cell is within 1e-3 of the
# CPU with the same top-1 and every bf16 cell within the bf16 policy (max |Δ| ≤ 1.5, mean
# KL ≤ 5e-3), else 1.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
OUT=${OUT:-cuda_check_out}
CTX=${CTX:-128}
GEN=${GEN:-8}
SPAN=${SPAN:-8}
BATCHES=${BATCHES:-1,2,4}
ATTN=${ATTN:-flash,naive}
DTYPES=${DTYPES:-f32 bf16}
NUMERICS=${NUMERICS:-invariant}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TRACECHECK_CACHE=${TRACECHECK_CACHE:-$OUT/cache}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
status=0

models=(tiny)
[ $# -ge 1 ] && models+=("$1")

{
  echo "== host"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
  "$BIN/tracecheck-engine" --version
  "$BIN/tracecheck" --version
} | tee "$OUT/host.txt"

compare() {  # compare CPU_SWEEP CUDA_SWEEP DTYPE → prints a table, exit 1 on an f32 breach
  python3 - "$1" "$2" "$3" <<'PY'
import json, os, struct, sys
import numpy as np

def load(path):
    """Tensors of a safetensors file as float64 arrays (F32, F16, BF16), no package needed."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            v = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, dtype="<f2")
        elif t["dtype"] == "BF16":
            v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view("<f4")
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}")
        out[name] = v.astype(np.float64).reshape(t["shape"])
    return out

cpu_dir, cuda_dir, dtype = sys.argv[1:4]
def cells(d):
    # The key after the backend; `fast` CUDA cells pair with the CPU's (always invariant) cells.
    return {c.split("_", 1)[1].replace("_fast_", "_invariant_"): os.path.join(d, c)
            for c in sorted(os.listdir(d))
            if os.path.isfile(os.path.join(d, c, "logits.safetensors"))}
cpu, cuda = cells(cpu_dir), cells(cuda_dir)
bad = 0
print(f"{'cell (after the backend)':58} {'tensor':8} {'max|Δ|':>10} {'KL mean':>9} {'top-1':>7} {'cuda tok/s':>10}")

def kl_mean(x, y):
    """Mean over rows of KL(cpu ‖ cuda) of the softmaxed logits, in f64."""
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    lx = x - x.max(-1, keepdims=True); lx -= np.log(np.exp(lx).sum(-1, keepdims=True))
    ly = y - y.max(-1, keepdims=True); ly -= np.log(np.exp(ly).sum(-1, keepdims=True))
    return float(np.mean(np.sum(np.exp(lx) * (lx - ly), -1))) if x.size else 0.0
for key in sorted(set(cpu) | set(cuda)):
    if key not in cpu or key not in cuda:
        print(f"{key:58} missing on {'cpu' if key not in cpu else 'cuda'}")
        bad += 1
        continue
    a, b = load(os.path.join(cpu[key], "logits.safetensors")), load(os.path.join(cuda[key], "logits.safetensors"))
    run = json.load(open(os.path.join(cuda[key], "run.json")))
    t, c = run.get("timings") or {}, run.get("config") or {}
    tps = ""
    if t.get("decode_s") and c.get("gen", 1) > 1:
        tps = f"{c['batch'] * (c['gen'] - 1) / t['decode_s']:.0f}"
    # Row j of a sequence consumed its generated token j-1: once the two backends generated
    # different tokens (a near-tie flip), later rows compare different inputs and are left out,
    # as `tracecheck analyze` does.
    ga = json.load(open(os.path.join(cpu[key], "run.json")))["tokens"]["generated"]
    gb = run["tokens"]["generated"]
    excluded = 0
    for name in ("decode", "prefill"):
        x, y = a[name], b[name]
        if x.shape != y.shape:
            print(f"{key:58} {name:8} shapes differ {x.shape} vs {y.shape}")
            bad += 1
            continue
        if x.ndim == 3:
            keep = []
            for s in range(x.shape[0]):
                span = x.shape[1]
                div = next((j for j in range(span) if ga[s][j:j + 1] != gb[s][j:j + 1]), None)
                rows = span if div is None else div + 1
                excluded += span - rows
                keep.append((x[s, :rows], y[s, :rows]))
            x = np.concatenate([k[0] for k in keep])
            y = np.concatenate([k[1] for k in keep])
        d = float(np.max(np.abs(x - y))) if x.size else 0.0
        ax, ay = x.reshape(-1, x.shape[-1]).argmax(-1), y.reshape(-1, y.shape[-1]).argmax(-1)
        top1 = float(np.mean(ax == ay))
        finite = bool(np.isfinite(y).all())
        kl = kl_mean(x, y) if finite else float("nan")
        flag = ""
        if dtype == "f32" and (d > 1e-3 or top1 < 1.0 or not finite):
            flag, bad = "  <-- FAIL (f32: max|Δ| ≤ 1e-3, same top-1)", bad + 1
        elif dtype == "bf16" and (d > 1.5 or not kl <= 5e-3):
            flag, bad = "  <-- FAIL (bf16 policy: max|Δ| ≤ 1.5, mean KL ≤ 5e-3)", bad + 1
        elif not finite:
            flag, bad = "  <-- FAIL (non-finite)", bad + 1
        note = f"  ({excluded} rows after a token divergence left out)" if excluded else ""
        print(f"{key:58} {name:8} {d:10.3e} {kl:9.2e} {top1:7.3f} {tps:>10}{flag}{note}")
        excluded = 0
sys.exit(1 if bad else 0)
PY
}

for model in "${models[@]}"; do
  label=$(basename "$model" .gguf | tr ':/' '__')
  for dtype in $DTYPES; do
    mkdir -p "$OUT/$label/$dtype"
    for backend in cpu cuda; do
      sweep="$OUT/$label/$dtype/$backend"
      echo "== $label $dtype $backend: tracecheck run → $sweep"
      numerics=invariant; [ "$backend" = cuda ] && numerics=$NUMERICS
      if ! "$BIN/tracecheck" run --mode b3_81 --backend "$backend" --numerics "$numerics" --model "$model" \
          --batches "$BATCHES" --ctx "$CTX" --gen "$GEN" --span "$SPAN" --dtype "$dtype" \
          --attn "$ATTN" --timeout 600 --out "$sweep" >"$sweep.run.log" 2>&1; then
        echo "   run FAILED (log: $sweep.run.log)"; tail -5 "$sweep.run.log"; status=1
      fi
    done
    cuda="$OUT/$label/$dtype/cuda"
    policy=exact; [ "$NUMERICS" = fast ] && policy=bf16
    echo "== $label $dtype: analyze the CUDA sweep ($policy: prefill vs decode, batch N vs batch 1)"
    if "$BIN/tracecheck" analyze --mode b3_81 --traces-dir "$cuda" --gate PASS_EQUIV \
        --policy "$policy" --output "$cuda/report.md" --json "$cuda/summary.json" \
        >"$cuda.analyze.log" 2>&1; then
      echo "   PASS_EQUIV"
    else
      echo "   gate FAILED (report: $cuda/report.md)"; tail -20 "$cuda.analyze.log"; status=1
    fi
    echo "== $label $dtype: CUDA vs CPU logits"
    if ! compare "$OUT/$label/$dtype/cpu" "$cuda" "$dtype" | tee "$OUT/compare_${label}_${dtype}.txt"; then
      status=1
    fi
  done
done
echo "== done: status $status (everything under $OUT)"
exit $status
