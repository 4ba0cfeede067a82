//! CUDA engine speed on one GPU (run on the GPU host: `cargo bench -p tracecheck-engine
//! --features cuda --bench cuda_speed`, or the prebuilt bench binary). Prints one Markdown table
//! and one JSON line: decode tokens/s at batch 1 and 8 (ctx 512 and 8192), prefill time of 8192
//! tokens, weight bandwidth achieved by decode. Host timing around `forward`, which returns
//! logits to the host (so each step is synchronised); warm-up first, median of repeats.
//!
//! Env: TRACECHECK_BENCH_MODEL (default dummy:smollm2-135m — the real shapes, no file needed),
//! TRACECHECK_BENCH_DTYPE (bf16), TRACECHECK_BENCH_ATTN (flash), TRACECHECK_BENCH_REPEATS (5).

use std::time::Instant;

use tracecheck_engine::backend::{AnyBackend, Backend, BackendKind, Precision, SeqChunk};
use tracecheck_engine::capture::{open_model, ModelSpec};
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let model_spec: ModelSpec = env("TRACECHECK_BENCH_MODEL", "dummy:smollm2-135m")
        .parse()
        .expect("model spec");
    let dtype: Dtype = env("TRACECHECK_BENCH_DTYPE", "bf16")
        .parse()
        .expect("dtype");
    let attn: AttnImpl = env("TRACECHECK_BENCH_ATTN", "flash").parse().expect("attn");
    let repeats: usize = env("TRACECHECK_BENCH_REPEATS", "5")
        .parse()
        .expect("repeats");
    let model = match open_model(&model_spec, 0) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cuda_speed: {e}");
            std::process::exit(2);
        }
    };
    let cfg = model.config().clone();
    let weight_bytes = cfg.n_params() as f64 * if dtype == Dtype::Bf16 { 2.0 } else { 4.0 };
    let mut be = match AnyBackend::new(BackendKind::Cuda, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cuda_speed: {e}");
            std::process::exit(2);
        }
    };
    let t = Instant::now();
    be.load(
        &model,
        Precision {
            dtype,
            attn,
            numerics: Numerics::Invariant,
        },
    )
    .expect("load");
    eprintln!("load {:.1}s on {}", t.elapsed().as_secs_f64(), be.device());
    let steps = 32;
    let mut rows = Vec::new();
    println!("| batch | ctx | prefill (s) | prefill tok/s | decode tok/s | decode ms/step | weight GB/s |");
    println!("|---|---|---|---|---|---|---|");
    for &(batch, ctx) in &[(1usize, 512usize), (8, 512), (1, 8192), (8, 8192)] {
        be.reserve(batch, ctx + steps + 1).expect("reserve");
        be.warm_up().expect("warm-up");
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|b| {
                (0..ctx)
                    .map(|i| ((i * 7919 + b * 104729 + 13) % cfg.vocab) as u32)
                    .collect()
            })
            .collect();
        let (mut pre, mut dec) = (Vec::new(), Vec::new());
        for rep in 0..=repeats {
            let seqs: Vec<SeqChunk> = prompts
                .iter()
                .enumerate()
                .map(|(b, p)| SeqChunk {
                    slot: b,
                    start: 0,
                    tokens: p,
                    keep: vec![ctx - 1],
                })
                .collect();
            let mut logits = Vec::new();
            let t = Instant::now();
            be.forward(&seqs, &mut logits).expect("prefill");
            let p = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for j in 0..steps {
                let toks: Vec<[u32; 1]> = (0..batch)
                    .map(|b| [((j * 31 + b) % cfg.vocab) as u32])
                    .collect();
                let seqs: Vec<SeqChunk> = (0..batch)
                    .map(|b| SeqChunk {
                        slot: b,
                        start: ctx + j,
                        tokens: &toks[b],
                        keep: vec![0],
                    })
                    .collect();
                logits.clear();
                be.forward(&seqs, &mut logits).expect("decode");
            }
            let d = t.elapsed().as_secs_f64();
            if rep > 0 {
                pre.push(p);
                dec.push(d / steps as f64);
            }
        }
        let (p, step) = (median(pre), median(dec));
        let row = serde_json::json!({
            "batch": batch, "ctx": ctx, "prefill_s": p, "prefill_tok_s": (batch * ctx) as f64 / p,
            "decode_tok_s": batch as f64 / step, "decode_ms_per_step": step * 1e3,
            "weight_gb_s": weight_bytes / step / 1e9,
        });
        println!(
            "| {batch} | {ctx} | {p:.3} | {:.0} | {:.0} | {:.2} | {:.0} |",
            (batch * ctx) as f64 / p,
            batch as f64 / step,
            step * 1e3,
            weight_bytes / step / 1e9
        );
        rows.push(row);
    }
    let mem = be.memory();
    println!(
        "{}",
        serde_json::json!({"device": be.device(), "model": cfg.name, "dtype": dtype.as_str(), "attn": attn.as_str(),
            "high_water_mb": mem.high_water as f64 / 1e6, "rows": rows})
    );
}
