//! The tokenizer against reference ids for SmolLM2-135M's GGUF vocabulary.
//!
//! The fixture (tests/fixtures/tokenizer_smollm2.json) comes from scripts/tokenizer_reference.py:
//! Hugging Face transformers' GGUF tokenizer conversion, an implementation independent of ours.
//! The model comes from the cache (`tracecheck-engine model fetch smollm2-135m`).

use std::path::Path;

use sha2::{Digest, Sha256};
use tracecheck_engine::prompts::CORPUS;
use tracecheck_engine::tokenizer::{GgufVocab, Tokenizer};

#[derive(serde::Deserialize)]
struct Fixture {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    corpus_sha256: String,
    corpus_ids_len: usize,
    corpus_ids_sha256: String,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_smollm2.json");
    let text = std::fs::read_to_string(&path).expect("fixture present");
    serde_json::from_str(&text).expect("fixture parses")
}

/// SmolLM2's vocabulary through the engine's own GGUF reader, from the model cache. Skipped
/// without the model unless TRACECHECK_REQUIRE_SMOLLM2=1 (CI), where it fails.
fn smollm2_vocab() -> Option<GgufVocab> {
    let path = tracecheck_engine::fetch::cached_path("smollm2-135m").unwrap();
    if !path.exists() {
        assert!(
            std::env::var("TRACECHECK_REQUIRE_SMOLLM2").as_deref() != Ok("1"),
            "{} is missing and TRACECHECK_REQUIRE_SMOLLM2=1",
            path.display()
        );
        eprintln!("skipped: {} not cached", path.display());
        return None;
    }
    let f = tracecheck_engine::gguf::GgufFile::open(&path).expect("SmolLM2 GGUF opens");
    Some(tracecheck_engine::model::gguf_vocab(&f).expect("tokenizer metadata"))
}

#[test]
fn smollm2_ids_match_reference() {
    let Some(vocab) = smollm2_vocab() else {
        return;
    };
    assert_eq!(vocab.model, "gpt2");
    assert_eq!(vocab.pre.as_deref(), Some("smollm"));
    let tok = Tokenizer::from_vocab(&vocab).expect("SmolLM2 tokenizer builds");
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));

    let fx = fixture();
    assert_eq!(fx.texts.len(), fx.ids.len());
    for (text, want) in fx.texts.iter().zip(&fx.ids) {
        let got = tok.encode(text).expect("encodes");
        assert_eq!(&got, want, "ids of {text:?}");
        assert_eq!(tok.decode(&got), *text, "round trip of {text:?}");
    }
    assert_eq!(tok.token_text(2), "<|im_end|>");
    assert_eq!(tok.token_text(fx.ids[0][0]), "Hello");

    // The whole bundled corpus, against the digest of the reference ids.
    assert_eq!(
        format!("{:x}", Sha256::digest(CORPUS.as_bytes())),
        fx.corpus_sha256,
        "corpus.txt changed: rerun scripts/tokenizer_reference.py"
    );
    let ids = tok.encode(CORPUS).expect("corpus encodes");
    assert_eq!(ids.len(), fx.corpus_ids_len);
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        fx.corpus_ids_sha256
    );
}
