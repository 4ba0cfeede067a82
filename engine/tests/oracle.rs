//! The f32 CPU engine against the independent float64 NumPy oracle (scripts/oracle/, itself
//! checked against Hugging Face transformers fp32: max |Δ| 5.5e-5): max |Δlogit| ≤ 2e-4 and
//! the same top-1 on every row.
//!
//! SmolLM2 needs the cached model (`tracecheck-engine model fetch smollm2-135m`); the test
//! skips without it unless TRACECHECK_REQUIRE_SMOLLM2=1 (CI sets it), where it fails.

use std::path::Path;

use safetensors::SafeTensors;
use tracecheck_engine::backend::{Backend, CpuBackend, Precision, SeqChunk};
use tracecheck_engine::capture::argmax;
use tracecheck_engine::model::{tiny, ModelSource};
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

fn fixture(name: &str) -> (Vec<u32>, Vec<f32>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids = st.tensor("ids").unwrap();
    let ids: Vec<u32> = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let logits = st.tensor("logits").unwrap();
    let logits: Vec<f32> = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (ids, logits)
}

fn check_against_oracle(model: &ModelSource, fixture_name: &str, attn: AttnImpl) {
    let (ids, want) = fixture(fixture_name);
    let vocab = model.config().vocab;
    assert_eq!(want.len(), ids.len() * vocab);
    let mut be = CpuBackend::new(None);
    be.load(
        model,
        Precision {
            dtype: Dtype::F32,
            attn,
            numerics: Numerics::Invariant,
        },
    )
    .unwrap();
    be.reserve(1, ids.len()).unwrap();
    let mut got = Vec::new();
    be.forward(
        &[SeqChunk {
            slot: 0,
            start: 0,
            tokens: &ids,
            keep: (0..ids.len()).collect(),
        }],
        &mut got,
    )
    .unwrap();
    let mut worst = 0f64;
    for (j, (g, w)) in got.chunks(vocab).zip(want.chunks(vocab)).enumerate() {
        let d = g
            .iter()
            .zip(w)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .fold(0.0, f64::max);
        worst = worst.max(d);
        assert!(
            d <= 2e-4,
            "{fixture_name} {attn}: row {j} max |Δ| {d:.3e} > 2e-4"
        );
        assert_eq!(
            argmax(g),
            argmax(w),
            "{fixture_name} {attn}: row {j} top-1 differs"
        );
    }
    eprintln!(
        "{fixture_name} {attn}: max |Δlogit| vs f64 oracle = {worst:.3e} over {} rows",
        ids.len()
    );
}

#[test]
fn tiny_model_matches_the_f64_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny::write(&path).unwrap();
    let model = ModelSource::open_gguf(&path).unwrap();
    for attn in [AttnImpl::Naive, AttnImpl::Flash] {
        check_against_oracle(&model, "oracle_tiny_f64.safetensors", attn);
    }
}

#[test]
fn tiny_model_file_is_byte_stable() {
    // The oracle fixture and the goldens were made from exactly these bytes.
    let bytes = tiny::to_bytes().unwrap();
    let digest = tracecheck_engine::model::hex_digest(&sha2::Sha256::digest(&bytes));
    assert_eq!(
        digest,
        "7ef89c35a6af6bca7cd4ea290e74b290dfc68816db6ee0a37dda7eb089010d40"
    );
}

#[test]
fn smollm2_matches_the_f64_oracle() {
    let path = tracecheck_engine::fetch::cached_path("smollm2-135m").unwrap();
    if !path.exists() {
        if std::env::var("TRACECHECK_REQUIRE_SMOLLM2").as_deref() == Ok("1") {
            panic!(
                "{} is missing and TRACECHECK_REQUIRE_SMOLLM2=1",
                path.display()
            );
        }
        eprintln!("skipped: {} not cached", path.display());
        return;
    }
    let model = ModelSource::open_gguf(&path).unwrap();
    for attn in [AttnImpl::Naive, AttnImpl::Flash] {
        check_against_oracle(&model, "oracle_smollm2_f64.safetensors", attn);
    }
}

use sha2::Digest;
