//! CUDA engine speed on one GPU — the benchmark script of issue 4. Run on the GPU host (the
//! prebuilt bench binary, or `cargo bench -p tracecheck-engine --features cuda --bench
//! cuda_speed`); `scripts/cuda_bench.sh` runs it for SmolLM2's shapes and Llama-3-8B's.
//!
//! For each numerics mode and each (batch, ctx): reserve, warm up (kernels compiled, decode
//! graphs captured by a first untimed repeat), then `repeats` timed repeats of a prefill of
//! `ctx` tokens per sequence and `steps` greedy decode steps, twice over the same positions:
//! once returning each step's logits to the host, which picks the next token (capture's span
//! steps), once as a greedy chain (`decode_greedy`: the next token chosen on the device, the
//! steps back to back — a decode loop, and capture's steps past the span). Both chains pick
//! the same tokens, so the second rewrites the cache with the same values; the untimed repeat
//! checks that the ids agree. Times come from CUDA events on the engine's stream (the decode
//! interval includes the host's work between steps: that is the decode rate a user gets),
//! medians are reported. Prints one Markdown table and one JSON line.
//!
//! Columns: achieved bandwidth = bytes a decode step must read (weights + the KV cache up to
//! the position) / step time, against the copy ceiling; prefill FLOP/s = matmul + causal
//! attention FLOPs / prefill time, against the bf16 dense tensor-core ceiling.
//!
//! Env: TRACECHECK_BENCH_MODEL (dummy:smollm2-135m — the real shapes, no file needed),
//! TRACECHECK_BENCH_DTYPE (bf16), TRACECHECK_BENCH_ATTN (flash), TRACECHECK_BENCH_NUMERICS
//! (invariant,fast), TRACECHECK_BENCH_CONFIGS (1x512,8x512,1x8192,8x8192: batch x ctx),
//! TRACECHECK_BENCH_REPEATS (5), TRACECHECK_BENCH_STEPS (32), TRACECHECK_BENCH_BW_GBS (3000,
//! the copy ceiling), TRACECHECK_BENCH_TFLOPS (790, the bf16 ceiling); the engine's A/B
//! switches (each 1 by default, 0 to time without it; the bits stay the same):
//! TRACECHECK_CUDA_GRAPHS, TRACECHECK_CUDA_PDL (programmatic dependent launches),
//! TRACECHECK_FLASH_DEC (the decode attention kernel), TRACECHECK_FUSED_MERGE_ROWS (rows up to
//! which decode attention merges its splits itself, default 4), TRACECHECK_FLASH_CLUSTER_MAX
//! (most splits merged inside a thread-block cluster, default 3; 0: the atomic merge),
//! TRACECHECK_FLASH_GROUP_MAX and TRACECHECK_FLASH_GROUP_ROWS (most splits and rows whose
//! splits run in one block of the decode attention, default 2 and 8; 0: off),
//! TRACECHECK_FLASH_DEC_BLOCKS (most blocks of a launch that takes the decode attention kernel,
//! default the SM count),
//! TRACECHECK_DEC8 (the decode matmul in weight batches of 8 where that is a warp's
//! segment), TRACECHECK_FUSED_NORM_MAX_K (widest rows the decode matmul normalises itself,
//! default 1024).

use std::time::Instant;

use tracecheck_engine::backend::{
    argmax, greedy_step, Backend, BackendError, CudaBackend, Precision, SeqChunk,
};
use tracecheck_engine::capture::{open_model, ModelSpec};
use tracecheck_engine::model::LlamaConfig;
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parse<T: std::str::FromStr>(name: &str, default: &str) -> T {
    let v = env(name, default);
    v.parse().unwrap_or_else(|_| {
        eprintln!("cuda_speed: {name}={v}: not understood");
        std::process::exit(2)
    })
}

/// Bytes one decode step must read: every weight once (the output matrix included) and each
/// sequence's K and V up to its position.
fn step_bytes(cfg: &LlamaConfig, elem: f64, batch: usize, pos: usize) -> f64 {
    let out = if cfg.tied_embeddings {
        cfg.vocab * cfg.n_embd
    } else {
        0
    };
    let weights = (cfg.n_params() - cfg.vocab * cfg.n_embd + out) as f64 * elem;
    let kv = (batch * cfg.n_layer * 2 * cfg.kv_dim() * pos) as f64 * elem;
    weights + kv
}

/// FLOPs of a prefill of `ctx` tokens for each of `batch` sequences (one kept row each).
fn prefill_flops(cfg: &LlamaConfig, batch: usize, ctx: usize) -> f64 {
    let per_layer = cfg.n_embd * (cfg.n_embd + 2 * cfg.kv_dim()) // q, k, v
        + cfg.n_embd * cfg.n_embd // o
        + 3 * cfg.n_embd * cfg.n_ff; // gate, up, down
    let matmul = 2.0 * (cfg.n_layer * per_layer) as f64 * ctx as f64;
    let pairs = ctx as f64 * (ctx as f64 + 1.0) / 2.0; // causal (query, key) pairs
    let attn = 4.0 * (cfg.n_layer * cfg.n_head * cfg.head_dim) as f64 * pairs;
    let logits = 2.0 * (cfg.vocab * cfg.n_embd) as f64;
    batch as f64 * (matmul + attn + logits)
}

struct Row {
    numerics: Numerics,
    batch: usize,
    ctx: usize,
    prefill_s: f64,
    /// A greedy decode step, and one that returns the logits.
    step_s: f64,
    logits_step_s: f64,
}

/// Medians of one (batch, ctx): prefill, greedy step, step with logits (seconds).
fn bench(
    be: &mut CudaBackend,
    cfg: &LlamaConfig,
    batch: usize,
    ctx: usize,
    steps: usize,
    repeats: usize,
) -> Result<(f64, f64, f64), BackendError> {
    be.reserve(batch, ctx + steps + 1)?;
    be.warm_up()?;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..ctx)
                .map(|i| ((i * 7919 + b * 104729 + 13) % cfg.vocab) as u32)
                .collect()
        })
        .collect();
    let first: Vec<[u32; 1]> = (0..batch)
        .map(|b| [((b * 31 + 7) % cfg.vocab) as u32])
        .collect();
    let start: Vec<SeqChunk> = (0..batch)
        .map(|b| SeqChunk::step(b, ctx, &first[b]))
        .collect();
    let (mut pre, mut dec, mut dec_logits) = (Vec::new(), Vec::new(), Vec::new());
    // Repeat 0 is a warm-up (first-use costs, graph capture) and the greedy check.
    for rep in 0..=repeats {
        let seqs: Vec<SeqChunk> = prompts
            .iter()
            .enumerate()
            .map(|(b, p)| SeqChunk::prompt(b, p))
            .collect();
        let mut logits = Vec::new();
        let (_, p) = be.timed(|be| be.forward(&seqs, &mut logits))?;
        let mut chosen = Vec::with_capacity(steps * batch);
        let (_, dl) = be.timed(|be| {
            let mut toks = first.clone();
            for j in 0..steps {
                logits.clear();
                be.forward(&greedy_step(&start, &toks, j), &mut logits)?;
                for (t, l) in toks.iter_mut().zip(logits.chunks_exact(cfg.vocab)) {
                    *t = [argmax(l)];
                    chosen.push(t[0]);
                }
            }
            Ok(())
        })?;
        let mut next = Vec::with_capacity(steps * batch);
        let (_, d) = be.timed(|be| be.decode_greedy(&start, steps, &mut next))?;
        if next != chosen {
            let at = next.iter().zip(&chosen).position(|(a, b)| a != b);
            return Err(BackendError::Device(format!(
                "the greedy chain's ids differ from the host argmax of the logits (first at step×row {at:?}; {} vs {} ids)",
                next.len(),
                chosen.len()
            )));
        }
        if rep > 0 {
            pre.push(p);
            dec.push(d / steps as f64);
            dec_logits.push(dl / steps as f64);
        }
    }
    Ok((median(pre), median(dec), median(dec_logits)))
}

fn main() {
    let model_spec: ModelSpec = parse("TRACECHECK_BENCH_MODEL", "dummy:smollm2-135m");
    let dtype: Dtype = parse("TRACECHECK_BENCH_DTYPE", "bf16");
    let attn: AttnImpl = parse("TRACECHECK_BENCH_ATTN", "flash");
    let repeats: usize = parse("TRACECHECK_BENCH_REPEATS", "5");
    let steps: usize = parse("TRACECHECK_BENCH_STEPS", "32");
    let bw_ceiling: f64 = parse("TRACECHECK_BENCH_BW_GBS", "3000");
    let tflops_ceiling: f64 = parse("TRACECHECK_BENCH_TFLOPS", "790");
    let numerics: Vec<Numerics> = env("TRACECHECK_BENCH_NUMERICS", "invariant,fast")
        .split(',')
        .map(|s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("cuda_speed: numerics {s}: not understood");
                std::process::exit(2)
            })
        })
        .collect();
    let configs: Vec<(usize, usize)> = env("TRACECHECK_BENCH_CONFIGS", "1x512,8x512,1x8192,8x8192")
        .split(',')
        .map(|c| {
            let (b, x) = c.split_once('x').unwrap_or(("", ""));
            match (b.parse(), x.parse()) {
                (Ok(b), Ok(x)) => (b, x),
                _ => {
                    eprintln!("cuda_speed: config {c}: expected BATCHxCTX");
                    std::process::exit(2)
                }
            }
        })
        .collect();
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("cuda_speed: {e}");
        std::process::exit(2)
    };
    let t = Instant::now();
    let model = open_model(&model_spec, 0).unwrap_or_else(|e| fail(&e));
    let cfg = model.config().clone();
    eprintln!(
        "model {} ready in {:.1}s",
        cfg.name,
        t.elapsed().as_secs_f64()
    );
    let elem = if dtype == Dtype::Bf16 { 2.0 } else { 4.0 };
    let mut be = CudaBackend::new(None).unwrap_or_else(|e| fail(&e));
    let mut rows = Vec::new();
    let mut high_water = Vec::new();
    for &nm in &numerics {
        let t = Instant::now();
        be.load(
            &model,
            Precision {
                dtype,
                attn,
                numerics: nm,
            },
        )
        .unwrap_or_else(|e| fail(&e));
        eprintln!(
            "{nm}: load {:.1}s on {}",
            t.elapsed().as_secs_f64(),
            be.device()
        );
        for &(batch, ctx) in &configs {
            match bench(&mut be, &cfg, batch, ctx, steps, repeats) {
                Ok((prefill_s, step_s, logits_step_s)) => {
                    eprintln!("{nm} b{batch} ctx{ctx}: prefill {prefill_s:.4}s, step {step_s:.6}s (with logits {logits_step_s:.6}s)");
                    rows.push(Row {
                        numerics: nm,
                        batch,
                        ctx,
                        prefill_s,
                        step_s,
                        logits_step_s,
                    });
                    high_water.push((nm, batch, ctx, be.memory().high_water as f64 / 1e6));
                }
                Err(e) => eprintln!("{nm} b{batch} ctx{ctx}: {e}"),
            }
        }
    }
    let fast_of = |r: &Row| {
        rows.iter()
            .find(|f| f.numerics == Numerics::Fast && f.batch == r.batch && f.ctx == r.ctx)
    };
    println!(
        "| numerics | batch | ctx | prefill (ms) | prefill tok/s | prefill TFLOP/s (% of {tflops_ceiling:.0}) | decode tok/s | ms/step | decode GB/s (% of {bw_ceiling:.0}) | ms/step, logits to host | ×fast prefill | ×fast decode | high-water MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    for (r, hw) in rows.iter().zip(&high_water) {
        let tok_s = (r.batch * r.ctx) as f64 / r.prefill_s;
        let tflops = prefill_flops(&cfg, r.batch, r.ctx) / r.prefill_s / 1e12;
        let gbs = step_bytes(&cfg, elem, r.batch, r.ctx + steps / 2) / r.step_s / 1e9;
        let (xp, xd) = match fast_of(r) {
            Some(f) => (r.prefill_s / f.prefill_s, r.step_s / f.step_s),
            None => (f64::NAN, f64::NAN),
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} ({:.1} %) | {:.0} | {:.3} | {:.0} ({:.1} %) | {:.3} | {:.2} | {:.2} | {:.0} |",
            r.numerics,
            r.batch,
            r.ctx,
            r.prefill_s * 1e3,
            tok_s,
            tflops,
            100.0 * tflops / tflops_ceiling,
            r.batch as f64 / r.step_s,
            r.step_s * 1e3,
            gbs,
            100.0 * gbs / bw_ceiling,
            r.logits_step_s * 1e3,
            xp,
            xd,
            hw.3
        );
        json_rows.push(serde_json::json!({
            "numerics": r.numerics.as_str(), "batch": r.batch, "ctx": r.ctx,
            "prefill_s": r.prefill_s, "prefill_tok_s": tok_s, "prefill_tflops": tflops,
            "decode_tok_s": r.batch as f64 / r.step_s, "decode_ms_per_step": r.step_s * 1e3,
            "decode_logits_ms_per_step": r.logits_step_s * 1e3,
            "decode_gb_s": gbs, "x_fast_prefill": xp, "x_fast_decode": xd, "high_water_mb": hw.3,
        }));
    }
    println!(
        "{}",
        serde_json::json!({"device": be.device(), "model": cfg.name, "dtype": dtype.as_str(),
            "attn": attn.as_str(), "steps": steps, "repeats": repeats,
            "graphs": env("TRACECHECK_CUDA_GRAPHS", "1") != "0",
            "bw_ceiling_gb_s": bw_ceiling, "tflops_ceiling": tflops_ceiling, "rows": json_rows})
    );
}
