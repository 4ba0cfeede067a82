#!/usr/bin/env python3
"""Cross-check the float64 NumPy oracle against Hugging Face transformers.

Loads the same GGUF with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)`, runs the
same ids (no BOS added) in float32 (and, by default, also float64), and compares with the
oracle's logits: max |d|, mean |d| and top-1 agreement per row. Writes DIR/hf_check.json.

  hf_check.py --model M.gguf --ids 1,2,3 --out-dir DIR             # runs the oracle in-process
  hf_check.py --model M.gguf --oracle-file O.safetensors --out-dir DIR   # ids from the file

Needs: torch, transformers, gguf, numpy, safetensors. Runs on CPU (default) or --device cuda.
"""
import argparse
import contextlib
import json
import os
import platform
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402


HF_TO_GGUF = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight"}
HF_LAYER = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
            "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
            "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf_name):
    if hf_name in HF_TO_GGUF:
        return HF_TO_GGUF[hf_name]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.weight", hf_name)
    return f"blk.{m.group(1)}.{HF_LAYER[m.group(2)]}.weight" if m and m.group(2) in HF_LAYER else None


@contextlib.contextmanager
def llama_internals_f64(enabled):
    """HF's LlamaRMSNorm and LlamaRotaryEmbedding compute in float32 even in a float64 model;
    for a sharp float64-vs-float64 comparison, run them in float64 (same formulas)."""
    if not enabled:
        yield
        return
    import torch
    from transformers.models.llama import modeling_llama as ml
    old = ml.LlamaRMSNorm.forward, ml.LlamaRotaryEmbedding.forward

    def rms(self, h):
        h64 = h.to(torch.float64)
        return self.weight * (h64 * torch.rsqrt(h64.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)).to(h.dtype)

    def rope(self, x, position_ids):
        d = self.inv_freq.shape[0] * 2
        theta = getattr(self.config, "rope_theta", None) or self.config.rope_parameters["rope_theta"]
        inv = 1.0 / (float(theta) ** (torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d))
        f = position_ids[..., None].to(torch.float64) * inv
        emb = torch.cat((f, f), dim=-1)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)

    ml.LlamaRMSNorm.forward, ml.LlamaRotaryEmbedding.forward = rms, rope
    try:
        yield
    finally:
        ml.LlamaRMSNorm.forward, ml.LlamaRotaryEmbedding.forward = old


def hf_logits(model_path, ids, dtype, device, oracle_weights=None):
    """HF logits [n, vocab] (float64 numpy), config summary, and (if oracle_weights is given)
    the max |d| between HF's loaded parameters and the oracle's dequantised/unpermuted ones."""
    import torch
    from transformers import AutoModelForCausalLM

    d, name = os.path.split(os.path.abspath(model_path))
    # eager attention takes its softmax in float32 whatever the model dtype; SDPA keeps float64
    kw = dict(gguf_file=name, attn_implementation="sdpa" if dtype == torch.float64 else "eager")
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
    except TypeError:  # transformers < 4.56 only knows torch_dtype
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, **kw)
    m = m.to(device=device, dtype=dtype).eval()
    wdiff = None
    if oracle_weights is not None:
        wdiff = {}
        for n, p in m.named_parameters():
            g = gguf_name(n)
            if g is None or g not in oracle_weights:
                wdiff[n] = "unmapped"
                continue
            wdiff[n] = float(np.abs(p.detach().double().cpu().numpy() - oracle_weights[g]).max())
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad(), llama_internals_f64(dtype == torch.float64):
        out = m(input_ids=x, use_cache=False).logits[0]
    cfg = m.config
    info = {k: getattr(cfg, k, None) for k in (
        "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
        "rms_norm_eps", "rope_theta", "tie_word_embeddings", "vocab_size")}
    if info["rope_theta"] is None:  # transformers 5 keeps it under rope_parameters
        info["rope_theta"] = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta")
    return out.double().cpu().numpy(), info, wdiff


def compare(ref, got):
    d = np.abs(ref - got)
    srt = np.sort(ref, axis=1)
    rows = [{"row": i, "max_abs": float(d[i].max()), "mean_abs": float(d[i].mean()),
             "top1_ref": int(ref[i].argmax()), "top1_hf": int(got[i].argmax()),
             "top1_agree": bool(ref[i].argmax() == got[i].argmax()),
             "ref_top1_margin": float(srt[i, -1] - srt[i, -2])} for i in range(len(ref))]
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "top1_agreement": float(np.mean([r["top1_agree"] for r in rows])), "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--ids")
    g.add_argument("--ids-file")
    ap.add_argument("--oracle-file", help="existing oracle logits (.safetensors); else run the oracle here")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", default="float32,float64", help="HF dtypes to compare (float32 always reported)")
    ap.add_argument("--tol-f32", type=float, default=2e-4, help="max |d| allowed for HF float32")
    ap.add_argument("--tol-f64", type=float, default=1e-8, help="max |d| allowed for HF float64")
    ap.add_argument("--tol-weights", type=float, default=1e-6,
                    help="max |d| between HF's loaded parameters and the oracle's")
    a = ap.parse_args()
    import torch
    import transformers
    torch.backends.cuda.matmul.allow_tf32 = False  # keep float32 IEEE on GPUs (no TF32)
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(a.out_dir, exist_ok=True)
    summary = {"model": os.path.abspath(a.model), "device": a.device,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "numpy": np.__version__, "gguf": oracle._pkg_version("gguf"),
                            "python": platform.python_version()}}

    if a.oracle_file:
        from safetensors import safe_open
        with safe_open(a.oracle_file, "np") as f:
            ref = f.get_tensor("logits").astype(np.float64)
            ids = f.get_tensor("ids").tolist()
            meta = f.metadata()
        summary["oracle_file"] = os.path.abspath(a.oracle_file)
        summary["oracle_precision"] = "float32-rounded float64 (from file)"
        sha = oracle.sha256_file(a.model)
        if meta.get("model_sha256") not in (None, sha):
            sys.exit(f"oracle file is for model sha256 {meta['model_sha256']}, not {sha}")
    else:
        if not (a.ids or a.ids_file):
            ap.error("--ids/--ids-file or --oracle-file is required")
        ids = oracle.parse_ids(a.ids, a.ids_file)
        t = time.perf_counter()
        ref, meta, tm = oracle.run_oracle(a.model, ids)
        summary["oracle_s"] = time.perf_counter() - t
        path = os.path.join(a.out_dir, "oracle_f64.safetensors")
        oracle.save(path, ref, ids, meta)
        summary["oracle_file"] = path
        summary["oracle_precision"] = "float64 (in-process)"
        print(f"oracle: {summary['oracle_s']:.1f}s -> {path}")
    summary["ids"] = ids
    summary["model_sha256"] = meta.get("model_sha256")

    _, W = oracle.load_model(a.model)  # for the parameter-by-parameter check
    ok = True
    for k, name in enumerate(a.dtypes.split(",")):
        dt = getattr(torch, name)
        t = time.perf_counter()
        got, cfg, wdiff = hf_logits(a.model, ids, dt, a.device, W if k == 0 else None)
        el = time.perf_counter() - t
        if wdiff is not None:
            bad = {n: v for n, v in wdiff.items() if v == "unmapped" or v > a.tol_weights}
            wmax = max((v for v in wdiff.values() if v != "unmapped"), default=float("nan"))
            summary["weights"] = {"n_params": len(wdiff), "max_abs": wmax, "tol": a.tol_weights,
                                  "mismatched": bad, "pass": not bad}
            ok &= not bad
            print(f"\nweights: {len(wdiff)} HF parameters vs oracle (dequantised, Q/K unpermuted): "
                  f"max|d|={wmax:.3e}  {'PASS' if not bad else f'FAIL {sorted(bad)[:5]}'}")
        res = compare(ref, got)
        tol = a.tol_f32 if name == "float32" else a.tol_f64
        if name != "float32" and "file" in summary["oracle_precision"]:
            tol = max(tol, float(np.abs(ref).max()) * 2.0 ** -23)  # file logits are f32-rounded
        res.update(hf_config=cfg, seconds=el, tol=tol,
                   **{"pass": bool(res["max_abs"] <= tol and res["top1_agreement"] == 1.0)})
        ok &= res["pass"]
        summary[f"hf_{name}"] = res
        print(f"\nHF {name} vs oracle ({el:.1f}s)  config {cfg}")
        print(" row  max|d|      mean|d|     top1(oracle/hf)  margin")
        for r in res["rows"]:
            print(f" {r['row']:3d}  {r['max_abs']:.3e}  {r['mean_abs']:.3e}  "
                  f"{r['top1_ref']:6d}/{r['top1_hf']:<6d} {'ok' if r['top1_agree'] else 'FLIP'}  "
                  f"{r['ref_top1_margin']:.4f}")
        print(f" ALL  max|d|={res['max_abs']:.3e} mean|d|={res['mean_abs']:.3e} "
              f"top1={res['top1_agreement']:.3f}  tol={tol:g} -> {'PASS' if res['pass'] else 'FAIL'}")

    summary["pass"] = bool(ok)
    out = os.path.join(a.out_dir, "hf_check.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nwrote {out}; overall {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
