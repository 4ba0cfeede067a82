//! The Llama forward pass on the CPU, top to bottom in one place.
//!
//! Rows are (sequence, position, token) triples from every sequence of the step, processed in
//! chunks of [`CHUNK_ROWS`]. With bf16 numerics, values are rounded to bf16 at exactly
//! DESIGN.md's points, marked `[bf16]` below; accumulation and softmax/norm statistics are f32.

use rayon::prelude::*;

use crate::backend::{flatten_step, BackendError, Precision, SeqChunk, StepRow};
use crate::model::LlamaConfig;
use crate::trace::{AttnImpl, Dtype};

use super::attention::{self, KvView};
use super::kernels::{add_in_place, matmul, rmsnorm, rmsnorm_row, rope_row, round_slice, swiglu};
use super::{Mat, State, Weights, CHUNK_ROWS};

pub(super) fn forward(
    cfg: &LlamaConfig,
    p: Precision,
    w: &Weights,
    st: &mut State,
    seqs: &[SeqChunk<'_>],
    logits: &mut Vec<f32>,
) -> Result<(), BackendError> {
    let rows = flatten_step(seqs, st.slots, st.max_ctx, cfg.vocab)?;
    for chunk in rows.chunks(CHUNK_ROWS) {
        forward_chunk(cfg, p, w, st, chunk, logits);
    }
    Ok(())
}

fn forward_chunk(
    cfg: &LlamaConfig,
    p: Precision,
    w: &Weights,
    st: &mut State,
    rows: &[StepRow],
    logits: &mut Vec<f32>,
) {
    let bf16 = p.dtype == Dtype::Bf16;
    let (n, d, kv, hd, ff) = (rows.len(), cfg.n_embd, cfg.kv_dim(), cfg.head_dim, cfg.n_ff);
    let half = hd / 2;

    // Token embeddings. [bf16] embedding output (the table is already bf16).
    let x = &mut st.x[..n * d];
    for (r, row) in rows.iter().enumerate() {
        embed_row(&w.embd, row.token as usize, d, &mut x[r * d..(r + 1) * d]);
    }
    round_slice(x, bf16);

    for (l, lw) in w.layers.iter().enumerate() {
        // Attention block. [bf16] norm output; q, k, v matmul outputs; Q and K after RoPE.
        rmsnorm(
            &st.x[..n * d],
            &lw.attn_norm,
            cfg.rms_eps,
            &mut st.xb[..n * d],
            bf16,
        );
        mm(&st.xb[..n * d], n, &lw.q, d, d, &mut st.q[..n * d], bf16);
        mm(&st.xb[..n * d], n, &lw.k, kv, d, &mut st.k[..n * kv], bf16);
        mm(&st.xb[..n * d], n, &lw.v, kv, d, &mut st.v[..n * kv], bf16);
        for (r, row) in rows.iter().enumerate() {
            let (c, s) = (
                &st.cos[row.pos * half..][..half],
                &st.sin[row.pos * half..][..half],
            );
            rope_row(&mut st.q[r * d..(r + 1) * d], hd, c, s, bf16);
            rope_row(&mut st.k[r * kv..(r + 1) * kv], hd, c, s, bf16);
        }
        // [bf16] K and V as stored in the cache (already rounded above).
        for (r, row) in rows.iter().enumerate() {
            let at = (row.slot * st.max_ctx + row.pos) * kv;
            st.k_cache[l][at..at + kv].copy_from_slice(&st.k[r * kv..(r + 1) * kv]);
            st.v_cache[l][at..at + kv].copy_from_slice(&st.v[r * kv..(r + 1) * kv]);
        }
        // Causal attention per (row, head) over the row's own sequence, keys 0..=pos.
        // [bf16] softmax probabilities before P·V; attention output before its projection.
        let group = cfg.n_head / cfg.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        let (kc, vc, q) = (&st.k_cache[l], &st.v_cache[l], &st.q);
        let max_ctx = st.max_ctx;
        st.att[..n * d]
            .par_chunks_mut(hd)
            .enumerate()
            .for_each_init(Vec::new, |scores, (i, out)| {
                let (r, h) = (i / cfg.n_head, i % cfg.n_head);
                let row = rows[r];
                let base = row.slot * max_ctx * kv;
                let view = KvView {
                    k: &kc[base..base + (row.pos + 1) * kv],
                    v: &vc[base..base + (row.pos + 1) * kv],
                    kv_dim: kv,
                    head_off: (h / group) * hd,
                };
                let qh = &q[r * d + h * hd..r * d + (h + 1) * hd];
                match p.attn {
                    AttnImpl::Naive => {
                        attention::naive(qh, &view, row.pos + 1, scale, out, bf16, scores)
                    }
                    AttnImpl::Flash => attention::flash(qh, &view, row.pos + 1, scale, out, bf16),
                }
            });
        // [bf16] output projection; residual after the add.
        mm(
            &st.att[..n * d],
            n,
            &lw.o,
            d,
            d,
            &mut st.proj[..n * d],
            bf16,
        );
        add_in_place(&mut st.x[..n * d], &st.proj[..n * d], bf16);

        // Feed-forward block (SwiGLU). [bf16] norm output; gate, up; silu(gate)·up; down;
        // residual after the add.
        rmsnorm(
            &st.x[..n * d],
            &lw.ffn_norm,
            cfg.rms_eps,
            &mut st.xb[..n * d],
            bf16,
        );
        mm(
            &st.xb[..n * d],
            n,
            &lw.gate,
            ff,
            d,
            &mut st.gate[..n * ff],
            bf16,
        );
        mm(
            &st.xb[..n * d],
            n,
            &lw.up,
            ff,
            d,
            &mut st.up[..n * ff],
            bf16,
        );
        swiglu(&mut st.gate[..n * ff], &st.up[..n * ff], bf16);
        mm(
            &st.gate[..n * ff],
            n,
            &lw.down,
            d,
            ff,
            &mut st.proj[..n * d],
            bf16,
        );
        add_in_place(&mut st.x[..n * d], &st.proj[..n * d], bf16);
    }

    // Logits for kept rows only: [bf16] final norm output; f32 accumulation, not rounded.
    let kept: Vec<usize> = (0..n).filter(|&r| rows[r].keep).collect();
    if kept.is_empty() {
        return;
    }
    let xn = &mut st.xb[..kept.len() * d];
    for (i, &r) in kept.iter().enumerate() {
        rmsnorm_row(
            &st.x[r * d..(r + 1) * d],
            &w.out_norm,
            cfg.rms_eps,
            &mut xn[i * d..(i + 1) * d],
            bf16,
        );
    }
    let out_w = w.output.as_ref().unwrap_or(&w.embd);
    let at = logits.len();
    logits.resize(at + kept.len() * cfg.vocab, 0.0);
    mm(
        xn,
        kept.len(),
        out_w,
        cfg.vocab,
        d,
        &mut logits[at..],
        false,
    );
}

/// out[n × m] = x · wᵀ, rounded to bf16 when `round`.
fn mm(x: &[f32], n: usize, w: &Mat, m: usize, k: usize, out: &mut [f32], round: bool) {
    match w {
        Mat::F32(w) => matmul(x, n, w, m, k, out),
        Mat::Bf16(w) => matmul(x, n, w, m, k, out),
    }
    if round {
        out[..n * m]
            .par_chunks_mut(4096)
            .for_each(|c| round_slice(c, true));
    }
}

fn embed_row(e: &Mat, t: usize, d: usize, out: &mut [f32]) {
    match e {
        Mat::F32(v) => out.copy_from_slice(&v[t * d..(t + 1) * d]),
        Mat::Bf16(v) => {
            for (o, b) in out.iter_mut().zip(&v[t * d..(t + 1) * d]) {
                *o = super::kernels::bf16_bits_to_f32(*b);
            }
        }
    }
}
