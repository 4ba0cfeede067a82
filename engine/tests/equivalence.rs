//! Requirement 7: the CPU engine's determinism and equivalence, f32 and bf16, both attention
//! implementations — decode rows bit-identical to prefill rows; sequence i of a batch-B capture
//! bit-identical to the batch-1 capture of the same prompt; identical bits at any thread count
//! and on every run; ragged batches too.

use tracecheck_engine::backend::{CpuBackend, Precision};
use tracecheck_engine::capture::{run_passes, Captured};
use tracecheck_engine::model::{tiny, ModelSource};
use tracecheck_engine::prompts::{ragged_len, PromptSource};
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

use tracecheck_engine::backend::Backend;

const GEN: usize = 6;
const SPAN: usize = 5;

fn tiny_model() -> ModelSource {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny::write(&path).unwrap();
    let m = ModelSource::open_gguf(&path).unwrap();
    // The file is mapped; keep the directory alive for the test's duration.
    std::mem::forget(dir);
    m
}

fn prompts(
    model: &ModelSource,
    offset: usize,
    batch: usize,
    ctx: usize,
    aligned: bool,
) -> Vec<Vec<u32>> {
    let src = PromptSource::counter(11, model.config().vocab).unwrap();
    (offset..offset + batch)
        .map(|i| {
            src.prompt(i, if aligned { ctx } else { ragged_len(ctx, i) })
                .unwrap()
        })
        .collect()
}

fn capture(
    model: &ModelSource,
    dtype: Dtype,
    attn: AttnImpl,
    prompts: &[Vec<u32>],
    threads: usize,
) -> Captured {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut be = CpuBackend::new(None);
        be.load(
            model,
            Precision {
                dtype,
                attn,
                numerics: Numerics::Invariant,
            },
        )
        .unwrap();
        let max = prompts.iter().map(Vec::len).max().unwrap() + GEN;
        be.reserve(prompts.len(), max).unwrap();
        run_passes(
            &mut be,
            model.config().vocab,
            prompts,
            GEN,
            SPAN,
            &mut |_, _| {},
        )
        .unwrap()
    })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_all(dtype: Dtype, attn: AttnImpl) {
    let model = tiny_model();
    let vocab = model.config().vocab;
    // ctx 70 crosses a flash tile boundary (64) during decode.
    for aligned in [true, false] {
        let ctx = 70;
        let b8 = capture(&model, dtype, attn, &prompts(&model, 0, 8, ctx, aligned), 2);
        assert!(b8.decode.iter().all(|x| x.is_finite()));
        // Prefill rows = decode rows, bit for bit.
        assert_eq!(
            bits(&b8.decode),
            bits(&b8.prefill),
            "{dtype} {attn} aligned={aligned}: prefill ≠ decode"
        );
        // Every sequence of every batch equals its batch-1 twin; batch 1 at 1 thread.
        let row = SPAN * vocab;
        for batch in [1usize, 2, 3, 4] {
            for offset in [0usize, 3] {
                let c = capture(
                    &model,
                    dtype,
                    attn,
                    &prompts(&model, offset, batch, ctx, aligned),
                    1,
                );
                for b in 0..batch {
                    let i = offset + b;
                    if i >= 8 {
                        continue;
                    }
                    assert_eq!(
                        bits(&c.decode[b * row..(b + 1) * row]),
                        bits(&b8.decode[i * row..(i + 1) * row]),
                        "{dtype} {attn} aligned={aligned}: batch {batch} seq {b} ≠ batch-8 seq {i}"
                    );
                    assert_eq!(c.generated[b], b8.generated[i]);
                }
            }
        }
        // Same bits on a second run.
        let again = capture(&model, dtype, attn, &prompts(&model, 0, 8, ctx, aligned), 2);
        assert_eq!(bits(&again.decode), bits(&b8.decode));
    }
}

#[test]
fn f32_flash_is_equivalent_and_batch_invariant() {
    check_all(Dtype::F32, AttnImpl::Flash);
}

#[test]
fn f32_naive_is_equivalent_and_batch_invariant() {
    check_all(Dtype::F32, AttnImpl::Naive);
}

#[test]
fn bf16_flash_is_equivalent_and_batch_invariant() {
    check_all(Dtype::Bf16, AttnImpl::Flash);
}

#[test]
fn bf16_naive_is_equivalent_and_batch_invariant() {
    check_all(Dtype::Bf16, AttnImpl::Naive);
}

#[test]
fn chunked_prefill_matches_unchunked_rows() {
    // A prompt longer than one forward chunk (256 rows) still gives decode = prefill.
    let model = tiny_model();
    let p = prompts(&model, 0, 2, 300, true);
    let c = capture(&model, Dtype::F32, AttnImpl::Flash, &p, 2);
    assert_eq!(bits(&c.decode), bits(&c.prefill));
}

#[test]
fn bf16_differs_from_f32_but_stays_close() {
    // Guards against a bf16 path that silently computes in f32 (or garbage).
    let model = tiny_model();
    let p = prompts(&model, 0, 1, 40, true);
    let a = capture(&model, Dtype::F32, AttnImpl::Flash, &p, 2);
    let b = capture(&model, Dtype::Bf16, AttnImpl::Flash, &p, 2);
    assert_ne!(bits(&a.decode), bits(&b.decode));
    let max = a
        .decode
        .iter()
        .zip(&b.decode)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max < 0.5, "bf16 vs f32 max |Δ| {max}");
}

#[test]
fn batch_sixteen_matches_batch_one() {
    let model = tiny_model();
    let vocab = model.config().vocab;
    let big = capture(
        &model,
        Dtype::Bf16,
        AttnImpl::Flash,
        &prompts(&model, 0, 16, 20, true),
        2,
    );
    let one = capture(
        &model,
        Dtype::Bf16,
        AttnImpl::Flash,
        &prompts(&model, 13, 1, 20, true),
        1,
    );
    let row = SPAN * vocab;
    assert_eq!(bits(&one.decode), bits(&big.decode[13 * row..14 * row]));
}

/// A greedy chain (`decode_greedy`: the steps past the span) picks, step for step, what a loop
/// of `forward` + host argmax picks, and capture's tokens past the span are that chain's.
#[test]
fn greedy_chain_matches_forward_and_argmax() {
    use tracecheck_engine::backend::{argmax, SeqChunk};
    let model = tiny_model();
    let vocab = model.config().vocab;
    let ps = prompts(&model, 0, 3, 12, false);
    let load = || {
        let mut be = CpuBackend::new(None);
        be.load(
            &model,
            Precision {
                dtype: Dtype::Bf16,
                attn: AttnImpl::Flash,
                numerics: Numerics::Invariant,
            },
        )
        .unwrap();
        be.reserve(ps.len(), 12 + 20).unwrap();
        let seqs: Vec<SeqChunk> = ps
            .iter()
            .enumerate()
            .map(|(b, p)| SeqChunk::prompt(b, p))
            .collect();
        let mut logits = Vec::new();
        be.forward(&seqs, &mut logits).unwrap();
        let first: Vec<[u32; 1]> = logits.chunks_exact(vocab).map(|l| [argmax(l)]).collect();
        (be, first)
    };
    let steps = 9;
    let (mut be, first) = load();
    let start: Vec<SeqChunk> = (0..ps.len())
        .map(|b| SeqChunk::step(b, ps[b].len(), &first[b]))
        .collect();
    let mut chain = Vec::new();
    be.decode_greedy(&start, steps, &mut chain).unwrap();
    assert_eq!(chain.len(), steps * ps.len());

    let (mut be, first) = load();
    let mut toks = first.clone();
    let mut looped = Vec::new();
    for j in 0..steps {
        let mut logits = Vec::new();
        be.forward(
            &tracecheck_engine::backend::greedy_step(&start, &toks, j),
            &mut logits,
        )
        .unwrap();
        for (t, l) in toks.iter_mut().zip(logits.chunks_exact(vocab)) {
            *t = [argmax(l)];
            looped.push(t[0]);
        }
    }
    assert_eq!(chain, looped);

    let cap = capture(&model, Dtype::Bf16, AttnImpl::Flash, &ps, 1);
    for (b, g) in cap.generated.iter().enumerate() {
        assert_eq!(g[0], first[b][0]);
    }
    // Past the span, capture's tokens continue from the span's last token as a chain.
    let (mut be, _) = load();
    let toks: Vec<[u32; 1]> = cap.generated.iter().map(|g| [g[SPAN - 1]]).collect();
    for (b, p) in ps.iter().enumerate() {
        for j in 1..SPAN {
            let t = [cap.generated[b][j - 1]];
            let mut l = Vec::new();
            be.forward(&[SeqChunk::step(b, p.len() + j - 1, &t)], &mut l)
                .unwrap();
        }
    }
    let from: Vec<SeqChunk> = (0..ps.len())
        .map(|b| SeqChunk::step(b, ps[b].len() + SPAN - 1, &toks[b]))
        .collect();
    let mut rest = Vec::new();
    be.decode_greedy(&from, GEN - SPAN, &mut rest).unwrap();
    for (b, g) in cap.generated.iter().enumerate() {
        let tail: Vec<u32> = rest.iter().skip(b).step_by(ps.len()).copied().collect();
        assert_eq!(&g[SPAN..], &tail[..]);
    }
}
