#!/usr/bin/env python3
"""Cross-check tracecheck's GGUF library against the reference Python `gguf` package (gguf-py).

Inputs come from the ignored Rust test `crosscheck_inputs` (engine/src/gguf/tests.rs):

    GGUF_CROSSCHECK_OUT=/tmp/gguf-x cargo test crosscheck_inputs -- --ignored
    python3 scripts/gguf_crosscheck.py /tmp/gguf-x [MODEL.gguf]

Checks, each bit for bit:
  1. writer.gguf (written by our writer) parses with gguf.GGUFReader; for every quantised tensor
     `X` with an f32 original `X.orig`, gguf.quants.quantize(X.orig) gives our bytes.
  2. For writer.gguf and MODEL.gguf (if given): gguf.quants.dequantize of every tensor equals our
     reader's dequantisation, stored by our writer as F32 in writer.dequant.gguf /
     smol.dequant.gguf; and the metadata gguf-py reads from the source equals the metadata our
     reader parsed and our writer re-wrote.
  3. sample.gguf (the byte-stability sample with a pinned hash) parses with gguf-py; its SHA-256
     is printed for the pin.

Requires: pip install gguf numpy. Exit status 0 when everything matches, 1 otherwise.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.quants import dequantize, quantize

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


def field_value(field):
    """A field's contents as plain Python (lists for arrays), comparable across files."""
    if hasattr(field, "contents"):
        return field.contents()
    return [field.parts[i].tolist() for i in field.data]


def same(a, b):
    """Equality with NaNs equal and floats compared by value (f32 values survive lists)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b


def metadata(reader):
    return {
        k: (tuple(int(t) for t in f.types), field_value(f))
        for k, f in reader.fields.items()
        if not k.startswith("GGUF.")
    }


def dequantised(t):
    """gguf-py's dequantisation of a reader tensor, in GGUF element order (dims[0] fastest)."""
    return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)


def check_dump(source: Path, dump: Path):
    src, ours = GGUFReader(source), GGUFReader(dump)
    ms, mo = metadata(src), metadata(ours)
    if list(ms) != list(mo):
        fail(f"{source.name}: metadata keys differ: {list(ms)[:5]}... vs {list(mo)[:5]}...")
    for k in ms:
        if k in mo and not (ms[k][0] == mo[k][0] and same(ms[k][1], mo[k][1])):
            fail(f"{source.name}: metadata `{k}` differs: {ms[k]!r:.200} vs {mo[k]!r:.200}")
    print(f"{source.name}: {len(ms)} metadata keys compared")

    by_name = {t.name: t for t in ours.tensors}
    n_tensors = n_values = n_skipped = n_bad = 0
    for t in src.tensors:
        try:
            want = dequantised(t)
        except NotImplementedError:
            n_skipped += 1
            continue
        o = by_name.get(t.name)
        if o is None:
            fail(f"{source.name}: tensor `{t.name}` ({t.tensor_type.name}) missing from our dump")
            continue
        got = np.asarray(o.data, dtype=np.float32).reshape(-1)
        if list(o.shape) != list(t.shape):
            fail(f"{source.name}: `{t.name}` shape {list(o.shape)} vs {list(t.shape)}")
        if got.shape != want.shape or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            diff = np.nanmax(np.abs(got - want)) if got.shape == want.shape else "shape"
            fail(f"{source.name}: `{t.name}` ({t.tensor_type.name}) differs, max |diff| {diff}")
            n_bad += 1
        n_tensors += 1
        n_values += want.size
    print(
        f"{source.name}: {n_tensors - n_bad} of {n_tensors} tensors ({n_values} values) "
        f"bit-identical to gguf-py "
        f"({n_skipped} of types gguf-py cannot dequantise skipped)"
    )


def check_quantisers(path: Path):
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    n = bad_count = 0
    for name, t in tensors.items():
        orig = tensors.get(name + ".orig")
        if orig is None:
            continue
        x = np.asarray(orig.data, dtype=np.float32).reshape(-1, int(orig.shape[0]))
        with np.errstate(over="ignore"):
            if t.tensor_type == T.F32:
                want = x.astype(np.float32).view(np.uint8)
            elif t.tensor_type == T.F16:
                want = x.astype(np.float16).view(np.uint8)
            else:
                want = quantize(x, t.tensor_type)
        got = np.asarray(t.data).view(np.uint8).reshape(-1)
        want = np.asarray(want).view(np.uint8).reshape(-1)
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = np.flatnonzero(got != want) if got.shape == want.shape else []
            fail(f"{path.name}: `{name}` ({t.tensor_type.name}) bytes differ at {bad[:8]}")
            bad_count += 1
        n += 1
    print(f"{path.name}: {n - bad_count} of {n} quantised tensors byte-identical to gguf-py's quantisers")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    d = Path(sys.argv[1])
    check_quantisers(d / "writer.gguf")
    check_dump(d / "writer.gguf", d / "writer.dequant.gguf")
    if len(sys.argv) == 3:
        check_dump(Path(sys.argv[2]), d / "smol.dequant.gguf")
    sample = d / "sample.gguf"
    r = GGUFReader(sample)
    print(
        f"sample.gguf: {len(r.fields)} fields, {len(r.tensors)} tensors, "
        f"sha256 {hashlib.sha256(sample.read_bytes()).hexdigest()}, {sample.stat().st_size} bytes"
    )
    print("OK" if not failures else f"{len(failures)} FAILURES")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
