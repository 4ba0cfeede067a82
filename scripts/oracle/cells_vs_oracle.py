#!/usr/bin/env python3
"""Which of several captured cells is closer to the float64 oracle?

Two engines' bf16 logits can disagree by more than a policy allows on a sensitive prompt; this
tells whether one of them is off or both sit at the same distance from the exact answer. For
each trace cell (a directory with run.json and logits.safetensors, batch 1), it runs
oracle.py's float64 forward over the cell's prompt + generated tokens and prints, per cell and
tensor, the mean and per-row KL(oracle ‖ cell), max |Δ| and top-1 agreement with the oracle,
then KL between the first cell and each other one. Rows are compared up to the first generated
token on which the cells disagree (later rows saw different inputs).

  cells_vs_oracle.py --model M.gguf CELL_DIR CELL_DIR [...]

Needs: numpy, gguf, safetensors (scripts/oracle/requirements.txt).
"""
import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl_rows(p, q):
    """KL(p ‖ q) of softmax(p), softmax(q), per row, in float64."""
    lp, lq = log_softmax(p), log_softmax(q)
    return np.sum(np.exp(lp) * (lp - lq), -1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the GGUF the cells ran")
    ap.add_argument("cells", nargs="+", help="trace cell directories (batch 1)")
    args = ap.parse_args(argv)

    runs, logits = [], []
    for c in args.cells:
        try:
            run = json.load(open(os.path.join(c, "run.json")))
            lg = load_file(os.path.join(c, "logits.safetensors"))
        except (OSError, ValueError) as e:
            sys.exit(f"cells_vs_oracle: {c}: {e}")
        if len(run["tokens"]["prompt"]) != 1:
            sys.exit(f"cells_vs_oracle: {c}: batch {len(run['tokens']['prompt'])}, need batch 1")
        runs.append(run)
        logits.append(lg)
    prompt = runs[0]["tokens"]["prompt"][0]
    if any(r["tokens"]["prompt"][0] != prompt for r in runs):
        sys.exit("cells_vs_oracle: the cells ran different prompts")
    gens = [r["tokens"]["generated"][0] for r in runs]
    span = min(lg["prefill"].shape[1] for lg in logits)
    # Row j consumed generated[j-1]: comparable while every cell generated the same before it.
    rows = next((j + 1 for j in range(span - 1) if len({g[j] for g in gens}) > 1), span)

    ids = prompt + gens[0][: rows - 1]
    full, _, _ = oracle.run_oracle(args.model, ids)
    ref = np.asarray(full, dtype=np.float64)[len(prompt) - 1 : len(prompt) - 1 + rows]
    print(f"prompt {len(prompt)} tokens, {rows} comparable rows (of {span}); oracle: {oracle.DESCRIPTION}")
    print("oracle top-2 margin per row:", " ".join(f"{m:.3f}" for m in np.diff(np.sort(ref, -1)[:, -2:], axis=-1)[:, 0]))
    fmt = {"float": lambda v: f"{v:.1e}"}
    for c, lg in zip(args.cells, logits):
        for name in ("prefill", "decode"):
            x = lg[name][0, :rows].astype(np.float64)
            k = kl_rows(ref, x)
            print(f"{os.path.basename(os.path.normpath(c))} {name:7} KL(oracle‖cell) mean {k.mean():.2e} "
                  f"rows {np.array2string(k, formatter=fmt)} max|Δ| {np.abs(ref - x).max():.3f} "
                  f"top-1 {np.mean(ref.argmax(-1) == x.argmax(-1)):.3f}")
    a = logits[0]["prefill"][0, :rows].astype(np.float64)
    for c, lg in zip(args.cells[1:], logits[1:]):
        k = kl_rows(a, lg["prefill"][0, :rows].astype(np.float64))
        print(f"KL(first ‖ {os.path.basename(os.path.normpath(c))}) prefill mean {k.mean():.2e}")


if __name__ == "__main__":
    main()
