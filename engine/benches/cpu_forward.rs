//! CPU engine throughput on SmolLM2-135M (run: `cargo bench -p tracecheck-engine --bench
//! cpu_forward`). Prints one table: prefill and decode tokens/s per dtype and context, the
//! median of repeats after a warm-up. Targets (DESIGN.md, 2 cores, ctx ≤ 512): decode ≥ 20
//! tok/s f32 and ≥ 40 bf16; prefill ≥ 100 tok/s.
//!
//! Env: TRACECHECK_BENCH_MODEL (a GGUF path; default: the cached SmolLM2), TRACECHECK_BENCH_CTX
//! (comma list, default 128,512), TRACECHECK_BENCH_REPEATS (default 3).

use std::time::Instant;

use tracecheck_engine::backend::{Backend, CpuBackend, Precision, SeqChunk};
use tracecheck_engine::capture::argmax;
use tracecheck_engine::model::ModelSource;
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let path = std::env::var("TRACECHECK_BENCH_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tracecheck_engine::fetch::cached_path("smollm2-135m").unwrap());
    if !path.exists() {
        eprintln!(
            "{} is missing: run `tracecheck-engine model fetch smollm2-135m` first",
            path.display()
        );
        std::process::exit(2);
    }
    let ctxs: Vec<usize> = std::env::var("TRACECHECK_BENCH_CTX")
        .unwrap_or_else(|_| "128,512".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeats: usize = std::env::var("TRACECHECK_BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let decode_steps = 16;
    let model = ModelSource::open_gguf(&path).expect("model");
    let vocab = model.config().vocab;
    println!(
        "machine: {} · {} threads",
        tracecheck_engine::backend::cpu::cpu_model_name(),
        rayon::current_num_threads()
    );
    println!("| dtype | attn | ctx | prefill tok/s | decode tok/s (batch 1) |");
    println!("|---|---|---|---|---|");
    let mut json = Vec::new();
    for dtype in [Dtype::F32, Dtype::Bf16] {
        for attn in [AttnImpl::Flash] {
            let mut be = CpuBackend::new(None);
            be.load(
                &model,
                Precision {
                    dtype,
                    attn,
                    numerics: Numerics::Invariant,
                },
            )
            .expect("load");
            for &ctx in &ctxs {
                be.reserve(1, ctx + decode_steps + 1).expect("reserve");
                let prompt: Vec<u32> = (0..ctx as u32)
                    .map(|i| (i * 7919 + 13) % vocab as u32)
                    .collect();
                let (mut pre, mut dec) = (Vec::new(), Vec::new());
                for rep in 0..=repeats {
                    let mut logits = Vec::new();
                    let t = Instant::now();
                    be.forward(&[SeqChunk::prompt(0, &prompt)], &mut logits)
                        .unwrap();
                    let p = t.elapsed().as_secs_f64();
                    let mut tok = argmax(&logits);
                    let t = Instant::now();
                    for j in 0..decode_steps {
                        logits.clear();
                        be.forward(&[SeqChunk::step(0, ctx + j, &[tok])], &mut logits)
                            .unwrap();
                        tok = argmax(&logits);
                    }
                    let d = t.elapsed().as_secs_f64();
                    if rep > 0 {
                        pre.push(ctx as f64 / p);
                        dec.push(decode_steps as f64 / d);
                    }
                }
                let (p, d) = (median(pre), median(dec));
                println!("| {dtype} | {attn} | {ctx} | {p:.1} | {d:.1} |");
                json.push(serde_json::json!({"dtype": dtype.as_str(), "attn": attn.as_str(), "ctx": ctx, "prefill_tok_s": p, "decode_tok_s": d}));
            }
        }
    }
    println!("{}", serde_json::Value::Array(json));
}
