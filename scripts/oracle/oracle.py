#!/usr/bin/env python3
"""Independent float64 NumPy oracle for Llama-architecture GGUF models.

Written from Hugging Face `LlamaForCausalLM` semantics (not from llama.cpp and not from
tracecheck's Rust engine):

  * weights are read and dequantised with the `gguf` package, then widened to float64;
  * GGUF stores Q/K rows permuted for llama.cpp's interleaved RoPE; we undo that permutation
    (as transformers' GGUF loader does) and apply HF rotate_half RoPE (pairs i, i + d/2);
  * RMSNorm (eps = llama.attention.layer_norm_rms_epsilon), GQA, SwiGLU, causal softmax,
    output head tied to token_embd when output.weight is absent, no BOS added.

Usage:
  oracle.py --model M.gguf --ids 1,2,3 --out logits.safetensors
  oracle.py --model M.gguf --ids-file ids.txt --out logits.safetensors
  oracle.py --selftest            # tiny random GGUF vs. a per-position second formulation
"""
import argparse
import hashlib
import os
import sys
import time

import numpy as np
import gguf
from gguf import GGUFReader
from gguf.quants import dequantize

SCRIPT = "scripts/oracle/oracle.py"
DESCRIPTION = "float64 numpy oracle"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpermute_qk(w, n_head):
    """Inverse of convert_hf_to_gguf.py `permute` (= transformers' reverse_permute_weights).

    GGUF row order within a head is interleaved (x0, x_{d/2}, x1, x_{d/2+1}, ...);
    HF order is (x0, x1, ..., x_{d/2-1}, x_{d/2}, ...)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_model(path):
    """Return (hparams dict, {tensor name: float64 ndarray in numpy [out, in] layout})."""
    r = GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    if arch != "llama":
        raise SystemExit(f"unsupported architecture {arch!r} (llama only)")

    def kv(key, default=None):
        f = r.fields.get(f"llama.{key}")
        return default if f is None else f.contents()

    hp = {
        "n_layer": int(kv("block_count")),
        "n_embd": int(kv("embedding_length")),
        "n_head": int(kv("attention.head_count")),
        "n_head_kv": int(kv("attention.head_count_kv", kv("attention.head_count"))),
        "eps": float(kv("attention.layer_norm_rms_epsilon", 1e-5)),
        "theta": float(kv("rope.freq_base", 10000.0)),
    }
    hp["head_dim"] = hp["n_embd"] // hp["n_head"]
    rope_dim = kv("rope.dimension_count")
    if rope_dim is not None and int(rope_dim) != hp["head_dim"]:
        raise SystemExit("partial RoPE (rope.dimension_count != head_dim) is not supported")
    if r.fields.get("llama.rope.scaling.type") is not None:
        scaling = r.fields["llama.rope.scaling.type"].contents()
        if scaling not in ("none", ""):
            raise SystemExit(f"RoPE scaling {scaling!r} is not supported")

    W = {}
    for t in r.tensors:
        a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
        # GGUF dims are innermost-first; numpy shape is the reverse.
        a = a.reshape(tuple(int(d) for d in reversed(t.shape.tolist())))
        if t.name.endswith("attn_q.weight"):
            a = unpermute_qk(a, hp["n_head"])
        elif t.name.endswith("attn_k.weight"):
            a = unpermute_qk(a, hp["n_head_kv"])
        W[t.name] = a
    if "output.weight" not in W:  # tied embeddings
        W["output.weight"] = W["token_embd.weight"]
    return hp, W


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_cos_sin(n, head_dim, theta):
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    freqs = np.outer(np.arange(n, dtype=np.float64), inv_freq)  # [n, d/2]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [n, d]
    return np.cos(emb), np.sin(emb)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(hp, W, ids):
    """Full causal forward over `ids`; returns float64 logits [n, vocab]."""
    ids = np.asarray(ids, dtype=np.int64)
    n, nh, nkv, hd = len(ids), hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    group = nh // nkv
    cos, sin = rope_cos_sin(n, hd, hp["theta"])  # [n, hd]
    mask = np.triu(np.full((n, n), -np.inf), k=1)  # key j > query i is masked

    x = W["token_embd.weight"][ids]  # [n, d]
    for l in range(hp["n_layer"]):
        p = f"blk.{l}."
        h = rms_norm(x, W[p + "attn_norm.weight"], hp["eps"])
        q = (h @ W[p + "attn_q.weight"].T).reshape(n, nh, hd).transpose(1, 0, 2)   # [nh, n, hd]
        k = (h @ W[p + "attn_k.weight"].T).reshape(n, nkv, hd).transpose(1, 0, 2)  # [nkv, n, hd]
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, nkv, hd).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, group, axis=0)  # head i uses kv head i // group (HF repeat_kv)
        v = np.repeat(v, group, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask  # [nh, n, n]
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(n, nh * hd)
        x = x + o @ W[p + "attn_output.weight"].T

        h = rms_norm(x, W[p + "ffn_norm.weight"], hp["eps"])
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T

    x = rms_norm(x, W["output_norm.weight"], hp["eps"])
    return x @ W["output.weight"].T


def run_oracle(model, ids):
    """Load + forward; returns (logits f64, metadata dict, timings dict)."""
    t0 = time.perf_counter()
    hp, W = load_model(model)
    t1 = time.perf_counter()
    logits = forward(hp, W, ids)
    t2 = time.perf_counter()
    meta = {
        "description": DESCRIPTION,
        "script": SCRIPT,
        "model_file": os.path.basename(model),
        "model_sha256": sha256_file(model),
        "ids": ",".join(str(int(i)) for i in ids),
        "n_tokens": str(len(ids)),
        "vocab": str(logits.shape[1]),
        "hparams": repr(hp),
        "numpy_version": np.__version__,
        "gguf_version": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
        "bos_added": "false",
    }
    return logits, meta, {"load_s": t1 - t0, "forward_s": t2 - t1}


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "unknown"


def save(path, logits, ids, meta):
    from safetensors.numpy import save_file
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file({"logits": np.ascontiguousarray(logits.astype(np.float32)),
               "ids": np.asarray(ids, dtype=np.int64)}, path, metadata=meta)


def parse_ids(ids=None, ids_file=None):
    text = open(ids_file).read() if ids_file else ids
    return [int(t) for t in text.replace(",", " ").split()]


# ----------------------------------------------------------------------------- self-test

def selftest(seed=0, tied=True):
    """Random tiny llama written with GGUFWriter (Q/K permuted like convert_hf_to_gguf.py,
    one tensor Q8_0-quantised); oracle.forward vs. an independent per-position formulation
    that keeps the llama.cpp (interleaved) Q/K layout with interleaved RoPE and a KV cache."""
    import tempfile
    from gguf import GGUFWriter, GGMLQuantizationType
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    d, nh, nkv, ff, vocab, nl, n = 64, 4, 2, 96, 100, 2, 9
    hd, theta, eps = d // nh, 5000.0, 1e-5

    def permute(w, heads):  # convert_hf_to_gguf.py LlamaModel.permute
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    r = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
    hf = {"embed": r(vocab, d), "norm": 1 + r(d), "lm_head": r(vocab, d)}
    for l in range(nl):
        hf[l] = {"q": r(nh * hd, d), "k": r(nkv * hd, d), "v": r(nkv * hd, d), "o": r(d, nh * hd),
                 "gate": r(ff, d), "up": r(ff, d), "down": r(d, ff), "n1": 1 + r(d), "n2": 1 + r(d)}
    # embedding goes through Q8_0; the reference uses the dequantised values too
    q8 = quantize(hf["embed"], GGMLQuantizationType.Q8_0)
    hf["embed"] = dequantize(q8, GGMLQuantizationType.Q8_0).astype(np.float32)

    path = os.path.join(tempfile.mkdtemp(), "tiny.gguf")
    w = GGUFWriter(path, "llama")
    w.add_block_count(nl); w.add_embedding_length(d); w.add_feed_forward_length(ff)
    w.add_head_count(nh); w.add_head_count_kv(nkv); w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(eps); w.add_context_length(64); w.add_rope_dimension_count(hd)
    w.add_tensor("token_embd.weight", q8, raw_shape=q8.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", hf["norm"])
    if not tied:
        w.add_tensor("output.weight", hf["lm_head"])
    for l in range(nl):
        L, p = hf[l], f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", L["n1"]); w.add_tensor(p + "ffn_norm.weight", L["n2"])
        w.add_tensor(p + "attn_q.weight", permute(L["q"], nh))
        w.add_tensor(p + "attn_k.weight", permute(L["k"], nkv))
        w.add_tensor(p + "attn_v.weight", L["v"]); w.add_tensor(p + "attn_output.weight", L["o"])
        w.add_tensor(p + "ffn_gate.weight", L["gate"]); w.add_tensor(p + "ffn_up.weight", L["up"])
        w.add_tensor(p + "ffn_down.weight", L["down"])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

    ids = rng.integers(0, vocab, n)
    hp, W = load_model(path)
    got = forward(hp, W, ids)

    # Second formulation: token by token, KV cache, interleaved RoPE on the *GGUF* (permuted)
    # Q/K rows, explicit loops over heads and keys. Mathematically identical to HF's.
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    G = {l: {k: f64(v) for k, v in hf[l].items()} for l in range(nl)}
    for l in range(nl):
        G[l]["q"], G[l]["k"] = permute(G[l]["q"], nh), permute(G[l]["k"], nkv)
    head = f64(hf["embed"] if tied else hf["lm_head"])

    def rope_interleaved(vec, pos):  # vec [hd]; pairs (2i, 2i+1)
        out = vec.copy()
        for i in range(hd // 2):
            a = pos * theta ** (-2.0 * i / hd)
            c, s = np.cos(a), np.sin(a)
            x0, x1 = vec[2 * i], vec[2 * i + 1]
            out[2 * i], out[2 * i + 1] = x0 * c - x1 * s, x0 * s + x1 * c
        return out

    def norm(x, g):
        return x / np.sqrt(sum(v * v for v in x) / len(x) + eps) * g

    cache = {l: ([], []) for l in range(nl)}
    ref = np.zeros((n, vocab))
    for pos, tok in enumerate(ids):
        x = f64(hf["embed"][tok])
        for l in range(nl):
            L = G[l]
            h = norm(x, L["n1"])
            q, k, v = L["q"] @ h, L["k"] @ h, L["v"] @ h
            ks = [rope_interleaved(k[j * hd:(j + 1) * hd], pos) for j in range(nkv)]
            cache[l][0].append(ks); cache[l][1].append([v[j * hd:(j + 1) * hd] for j in range(nkv)])
            o = np.zeros(nh * hd)
            for hh in range(nh):
                qh = rope_interleaved(q[hh * hd:(hh + 1) * hd], pos)
                kvh = hh // (nh // nkv)
                sc = [float(qh @ cache[l][0][j][kvh]) / np.sqrt(hd) for j in range(pos + 1)]
                m = max(sc); e = [np.exp(s - m) for s in sc]; z = sum(e)
                o[hh * hd:(hh + 1) * hd] = sum(e[j] / z * cache[l][1][j][kvh] for j in range(pos + 1))
            x = x + L["o"] @ o
            h = norm(x, L["n2"])
            g, u = L["gate"] @ h, L["up"] @ h
            x = x + L["down"] @ (g * (1 / (1 + np.exp(-g))) * u)
        ref[pos] = head @ norm(x, f64(hf["norm"]))

    diff = np.abs(got - ref).max()
    top1 = (got.argmax(1) == ref.argmax(1)).mean()
    ok = diff < 1e-9 and top1 == 1.0
    print(f"selftest tied={tied}: max|d|={diff:.3e} top1={top1:.3f} -> {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--ids", help="comma/space separated token ids (no BOS is added)")
    g.add_argument("--ids-file")
    ap.add_argument("--out", help="output .safetensors")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args(argv)
    if a.selftest:
        ok = selftest(tied=True) & selftest(seed=1, tied=False)
        sys.exit(0 if ok else 1)
    if not (a.model and (a.ids or a.ids_file) and a.out):
        ap.error("--model, --ids/--ids-file and --out are required")
    ids = parse_ids(a.ids, a.ids_file)
    logits, meta, tm = run_oracle(a.model, ids)
    save(a.out, logits, ids, meta)
    print(f"wrote {a.out}: logits {logits.shape} (load {tm['load_s']:.1f}s, "
          f"forward {tm['forward_s']:.1f}s); argmax {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main()
