//! The Llama forward pass on CUDA, top to bottom in one place, one launch per step.
//!
//! Rows are (sequence, position, token) triples from every sequence of the step, processed in
//! chunks of [`CHUNK_ROWS`] (the CPU's order of rows). With bf16 numerics, values are rounded
//! to bf16 at exactly DESIGN.md's points (the CPU backend's `[bf16]` marks), inside the kernels'
//! epilogues; accumulation and softmax/norm statistics are f32. Every launch below gives a row
//! the same bits whatever the other rows of the launch are (see the `.cu` files).
//!
//! Nothing is allocated here: scratch, the KV cache and the row-metadata buffer come from
//! `reserve`. Not in this pass: CUDA graphs for decode steps (each step is ~7 launches per
//! layer, 8 with the flash merge past 256 positions).

use cudarc::driver::CudaStream;
use std::sync::Arc;

use crate::backend::{flatten_step, BackendError, Precision, SeqChunk, StepRow};
use crate::model::LlamaConfig;
use crate::trace::{AttnImpl, Dtype};

use super::kernels::{AttnShape, Epi, Kernels, QkvArgs, FLASH_SPLIT};
use super::memory::{copy_dtoh, copy_htod};
use super::{State, Weights, CHUNK_ROWS, LOGIT_ROWS};

/// Row metadata of one chunk, i32, uploaded once per chunk: tokens, KV slot and position of
/// each row, flash query tiles (first row, rows), and the kept rows.
const TOK: usize = 0;
const SLOT: usize = CHUNK_ROWS;
const POS: usize = 2 * CHUNK_ROWS;
const TILES: usize = 3 * CHUNK_ROWS;
const KEPT: usize = 5 * CHUNK_ROWS;
pub(super) const META_INTS: usize = 6 * CHUNK_ROWS;

#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    cfg: &LlamaConfig,
    p: Precision,
    w: &Weights,
    st: &mut State,
    k: &Kernels,
    s: &Arc<CudaStream>,
    seqs: &[SeqChunk<'_>],
    logits: &mut Vec<f32>,
) -> Result<(), BackendError> {
    let rows = flatten_step(seqs, st.slots, st.max_ctx, cfg.vocab)?;
    for chunk in rows.chunks(CHUNK_ROWS) {
        forward_chunk(cfg, p, w, st, k, s, chunk, logits)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn forward_chunk(
    cfg: &LlamaConfig,
    p: Precision,
    w: &Weights,
    st: &mut State,
    k: &Kernels,
    s: &Arc<CudaStream>,
    rows: &[StepRow],
    logits: &mut Vec<f32>,
) -> Result<(), BackendError> {
    let bf16 = p.dtype == Dtype::Bf16;
    let (n, d, kv, hd, ff, vocab) = (
        rows.len(),
        cfg.n_embd,
        cfg.kv_dim(),
        cfg.head_dim,
        cfg.n_ff,
        cfg.vocab,
    );
    let eps = cfg.rms_eps;

    // Row metadata, one upload. Flash query tiles: runs of consecutive positions of one
    // sequence, at most `flash_qt` rows each (they share K/V loads, never arithmetic).
    let meta = &mut st.host_meta;
    let mut kept = 0;
    for (i, r) in rows.iter().enumerate() {
        meta[TOK + i] = r.token as i32;
        meta[SLOT + i] = r.slot as i32;
        meta[POS + i] = r.pos as i32;
        if r.keep {
            meta[KEPT + kept] = i as i32;
            kept += 1;
        }
    }
    let (mut n_tiles, mut qt) = (0usize, 0usize);
    let mut i = 0;
    while i < n {
        let mut len = 1;
        while i + len < n
            && len < k.flash_qt
            && rows[i + len].slot == rows[i].slot
            && rows[i + len].pos == rows[i].pos + len
        {
            len += 1;
        }
        meta[TILES + 2 * n_tiles] = i as i32;
        meta[TILES + 2 * n_tiles + 1] = len as i32;
        n_tiles += 1;
        qt = qt.max(len);
        i += len;
    }
    copy_htod(&st.meta, 0, &meta[..], s)?;
    let at = |off: usize| st.meta.at::<i32>(off);
    let n_splits = rows
        .iter()
        .map(|r| r.pos / FLASH_SPLIT + 1)
        .max()
        .unwrap_or(1);

    let attn = AttnShape {
        d: d as i32,
        kv: kv as i32,
        hd: hd as i32,
        group: (cfg.n_head / cfg.n_kv_head) as i32,
        n_head: cfg.n_head as i32,
        n_kv_head: cfg.n_kv_head as i32,
        scale: 1.0 / (hd as f32).sqrt(),
        round: bf16 as i32,
        max_ctx: st.max_ctx as i32,
    };
    let plain = QkvArgs::default();
    let (x, xb, q, att, ffb) = (
        st.x.ptr(),
        st.xb.ptr(),
        st.q.ptr(),
        st.att.ptr(),
        st.ff.ptr(),
    );

    // Token embeddings. [bf16] embedding output (the table is already bf16).
    k.embed(s, n, at(TOK), w.embd.ptr(), d, x)?;

    for (l, lw) in w.layers.iter().enumerate() {
        let (kc, vc) = (st.k_cache[l].ptr(), st.v_cache[l].ptr());
        // Attention block. [bf16] norm output; q, k, v matmul outputs; Q and K after RoPE;
        // K and V as stored in the cache — all in the fused QKV epilogue.
        k.rmsnorm(s, n, x, 0, lw.attn_norm.ptr(), d, eps, bf16, xb)?;
        let qkv = QkvArgs {
            k_cache: kc,
            v_cache: vc,
            row_slot: at(SLOT),
            row_pos: at(POS),
            cos: st.cos.ptr(),
            sin: st.sin.ptr(),
            d: d as i32,
            kv: kv as i32,
            hd: hd as i32,
            max_ctx: st.max_ctx as i32,
        };
        k.matmul(
            s,
            xb,
            n,
            d,
            lw.qkv.ptr(),
            d + 2 * kv,
            Epi::Qkv,
            bf16,
            q,
            d,
            &qkv,
        )?;
        // Causal attention per (row, head) over the row's own sequence, keys 0..=pos.
        // [bf16] softmax probabilities before P·V; attention output before its projection.
        match p.attn {
            AttnImpl::Flash => {
                k.flash(
                    s,
                    &attn,
                    n,
                    q,
                    kc,
                    vc,
                    at(TILES),
                    n_tiles,
                    qt,
                    n_splits,
                    at(SLOT),
                    at(POS),
                    st.part_o.ptr(),
                    st.part_ml.ptr(),
                    st.max_splits,
                    att,
                )?;
            }
            AttnImpl::Naive => {
                k.naive(
                    s,
                    &attn,
                    n,
                    q,
                    kc,
                    vc,
                    at(SLOT),
                    at(POS),
                    att,
                    st.scores.ptr(),
                )?;
            }
        }
        // [bf16] output projection; residual after the add (fused epilogue).
        k.matmul(
            s,
            att,
            n,
            d,
            lw.o.ptr(),
            d,
            Epi::Residual,
            bf16,
            x,
            d,
            &plain,
        )?;

        // Feed-forward block (SwiGLU). [bf16] norm output; gate, up; silu(gate)·up (fused
        // epilogue over interleaved gate/up rows); down; residual after the add.
        k.rmsnorm(s, n, x, 0, lw.ffn_norm.ptr(), d, eps, bf16, xb)?;
        k.matmul(
            s,
            xb,
            n,
            d,
            lw.gate_up.ptr(),
            2 * ff,
            Epi::Swiglu,
            bf16,
            ffb,
            ff,
            &plain,
        )?;
        k.matmul(
            s,
            ffb,
            n,
            ff,
            lw.down.ptr(),
            d,
            Epi::Residual,
            bf16,
            x,
            d,
            &plain,
        )?;
    }

    // Logits for kept rows only, LOGIT_ROWS at a time: [bf16] final norm output; f32
    // accumulation, not rounded.
    let out_w = w.output.as_ref().unwrap_or(&w.embd).ptr();
    let mut g0 = 0;
    while g0 < kept {
        let g = (kept - g0).min(LOGIT_ROWS);
        k.rmsnorm(
            s,
            g,
            x,
            at(KEPT + g0),
            w.out_norm.ptr(),
            d,
            eps,
            bf16,
            st.xn.ptr(),
        )?;
        k.matmul(
            s,
            st.xn.ptr(),
            g,
            d,
            out_w,
            vocab,
            Epi::Store,
            false,
            st.logits.ptr(),
            vocab,
            &plain,
        )?;
        copy_dtoh(&st.logits, 0, &mut st.host_logits[..g * vocab], s)?;
        logits.extend_from_slice(&st.host_logits[..g * vocab]);
        g0 += g;
    }
    Ok(())
}
