//! The Llama forward pass on CUDA, top to bottom in one place, one launch per step.
//!
//! Rows are (sequence, position, token) triples from every sequence of the step, processed in
//! chunks of [`CHUNK_ROWS`] (the CPU's order of rows). With bf16 numerics, values are rounded
//! to bf16 at exactly DESIGN.md's points (the CPU backend's `[bf16]` marks), inside the kernels'
//! epilogues; accumulation and softmax/norm statistics are f32. Every launch below gives a row
//! the same bits whatever the other rows of the launch are (see the `.cu` files).
//!
//! Nothing is allocated here: scratch, the KV cache, pinned host staging and the row-metadata
//! buffer come from `reserve`. Chunks of up to [`GRAPH_MAX_ROWS`] rows (decode steps) replay a
//! CUDA graph captured at the first step of their shape: a decode step is 5 launches per layer
//! with bf16 numerics (QKV with its norm, attention, O, gate/up with its norm, down; 6 with a
//! separate split merge), too many to issue one by one when each runs for microseconds.
//!
//! Greedy steps ([`decode_greedy`]; single steps through `Out::Greedy`) choose the next token on
//! the device (argmax.cu) and bring back one id per row instead of the row's logits; a greedy
//! chain replays its step graph back to back, the argmax writing the next step's tokens and
//! positions into the row metadata, with no host work between the steps (H100, SmolLM2 batch 8
//! ctx 512: 0.86 ms per step returning logits, 0.65 choosing on the device, 0.63 chained).

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaStream};
use std::sync::Arc;

use crate::backend::{
    flatten_step, greedy_chain_tokens, greedy_step, BackendError, Precision, SeqChunk, StepRow,
};
use crate::model::LlamaConfig;
use crate::trace::{AttnImpl, Dtype};

use super::kernels::{
    ArgmaxArgs, AttnShape, Epi, FastScratch, Gemm, Kernels, Norm, QkvArgs, FLASH_SPLIT,
};
use super::memory::{copy_dtoh, copy_htod, dev};
use super::{State, Weights, CHUNK_ROWS, LOGIT_ROWS};

/// Row metadata of one chunk, i32, uploaded once per chunk: tokens, KV slot and position of
/// each row, flash query tiles (first row, rows), the kept rows, and each row's count of
/// greedy ids chosen since the upload (zero; argmax.cu counts it up).
const TOK: usize = 0;
const SLOT: usize = CHUNK_ROWS;
const POS: usize = 2 * CHUNK_ROWS;
const TILES: usize = 3 * CHUNK_ROWS;
const KEPT: usize = 5 * CHUNK_ROWS;
const STEPS: usize = 6 * CHUNK_ROWS;
pub(super) const META_INTS: usize = 7 * CHUNK_ROWS;

/// Greedy decode steps replayed back to back before their ids come to the host (bounds the
/// ids buffer: `GREEDY_STEPS` × `LOGIT_ROWS`).
pub(super) const GREEDY_STEPS: usize = 128;

/// What a chunk's launches depend on besides the uploaded metadata: a captured decode graph
/// is keyed by it (positions, slots and tokens are read from device memory, so one graph
/// serves every step of that shape).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Shape {
    n: usize,
    n_tiles: usize,
    qt: usize,
    kept: usize,
    /// At most one row per sequence (a decode step): attention may then read the K/V of
    /// earlier positions before the QKV kernel has finished (it writes only the rows' own).
    single: bool,
    /// The kept rows' greedy ids are chosen on the device (argmax.cu) and only they come back.
    greedy: bool,
}

/// What a forward step hands back for its kept rows.
pub(super) enum Out<'a> {
    /// Their logits, appended (`vocab` floats per row).
    Logits(&'a mut Vec<f32>),
    /// Their greedy next tokens, appended.
    Greedy(&'a mut Vec<u32>),
}

/// Chunks of at most this many rows, with all their kept rows in one logits launch, run as a
/// CUDA graph (decode steps up to batch 64; short prefill chunks).
const GRAPH_MAX_ROWS: usize = 64;

/// `TRACECHECK_CUDA_GRAPHS=0` turns graphs off (for A/B timing); they are on by default.
/// Read once per `reserve`, not per step.
pub(super) fn graphs_enabled() -> bool {
    super::switch_on("TRACECHECK_CUDA_GRAPHS")
}

/// What every launch of a forward pass reads (the per-run state is passed apart: the host
/// side of it changes between chunks).
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    pub cfg: &'a LlamaConfig,
    pub p: Precision,
    pub w: &'a Weights,
    pub k: &'a Kernels,
    pub s: &'a Arc<CudaStream>,
}

pub(super) fn forward(
    pass: Pass<'_>,
    st: &mut State,
    seqs: &[SeqChunk<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let Pass { cfg, k, s, .. } = pass;
    let rows = flatten_step(seqs, st.slots, st.max_ctx, cfg.vocab)?;
    let greedy = matches!(out, Out::Greedy(_));
    for chunk in rows.chunks(CHUNK_ROWS) {
        let (shape, n_splits) = upload_meta(st, k, s, chunk, greedy)?;
        if graphed(st, shape.n, shape.kept) {
            launch_graph(pass, st, shape)?;
            fetch(st, s, shape.kept, cfg.vocab, &mut out)?;
        } else {
            enqueue_layers(pass, st, shape, n_splits)?;
            let mut g0 = 0;
            while g0 < shape.kept {
                let g = (shape.kept - g0).min(LOGIT_ROWS);
                enqueue_logits(pass, st, g0, shape, g)?;
                fetch(st, s, g, cfg.vocab, &mut out)?;
                g0 += g;
            }
        }
    }
    Ok(())
}

/// Runs `steps` greedy decode steps of one token per sequence (each kept), step i + 1 fed the
/// ids step i chose; appends the ids step by step. Each step replays the step's graph with no
/// host work in between: the argmax kernel writes the next step's tokens and positions into
/// the row metadata itself, and the ids come to the host every `GREEDY_STEPS` steps. For
/// chains that [`chains`] allows (the caller runs the others one step at a time).
pub(super) fn decode_greedy(
    pass: Pass<'_>,
    st: &mut State,
    seqs: &[SeqChunk<'_>],
    steps: usize,
    next: &mut Vec<u32>,
) -> Result<(), BackendError> {
    let Pass { cfg, k, s, .. } = pass;
    let mut toks = greedy_chain_tokens(seqs)?;
    let n = seqs.len();
    let mut done = 0;
    while done < steps {
        let round = (steps - done).min(GREEDY_STEPS);
        let check = |j| {
            flatten_step(
                &greedy_step(seqs, &toks, j),
                st.slots,
                st.max_ctx,
                cfg.vocab,
            )
        };
        // The device advances the positions unchecked: the round's last must fit the cache.
        check(done + round - 1)?;
        let rows = check(done)?;
        let (shape, _) = upload_meta(st, k, s, &rows, true)?;
        for _ in 0..round {
            launch_graph(pass, st, shape)?;
        }
        fetch_ids(st, s, round * n, next)?;
        for (t, &id) in toks.iter_mut().zip(&next[next.len() - n..]) {
            *t = [id];
        }
        done += round;
    }
    Ok(())
}

/// Whether a greedy chain of `n` sequences runs on the device ([`decode_greedy`]): each step
/// is one graph.
pub(super) fn chains(st: &State, n: usize) -> bool {
    graphed(st, n, n)
}

/// Whether a chunk of `n` rows, `kept` of them kept, replays a CUDA graph: graphs on, a
/// decode-sized chunk whose kept rows fit one logits launch.
fn graphed(st: &State, n: usize, kept: usize) -> bool {
    st.use_graphs && n <= GRAPH_MAX_ROWS && kept <= LOGIT_ROWS
}

/// Replays the graph of `shape` (layers and logits of the uploaded chunk), captured at its
/// first use. Every split of the reserved context is launched: blocks past a row's position
/// return at once, so the graph does not depend on the positions.
fn launch_graph(pass: Pass<'_>, st: &mut State, shape: Shape) -> Result<(), BackendError> {
    if !st.graphs.contains_key(&shape) {
        let g = capture(pass.s, || {
            enqueue_layers(pass, st, shape, st.max_splits)?;
            enqueue_logits(pass, st, 0, shape, shape.kept)
        })?;
        st.graphs.insert(shape, g);
    }
    st.graphs[&shape]
        .launch()
        .map_err(|e| dev("cuGraphLaunch", e))
}

/// Captures the launches `f` issues on `s` into an instantiated graph (nothing is allocated
/// or copied inside: buffers come from `reserve`). A failed launch ends the capture first.
fn capture(
    s: &Arc<CudaStream>,
    f: impl FnOnce() -> Result<(), BackendError>,
) -> Result<CudaGraph, BackendError> {
    // Relaxed: the memory sampler's cuMemGetInfo on another thread must not break a capture.
    s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
        .map_err(|e| dev("cuStreamBeginCapture", e))?;
    let issued = f();
    let ended = s.end_capture(CUgraphInstantiate_flags(0));
    issued?;
    let g = ended
        .map_err(|e| dev("cuStreamEndCapture", e))?
        .ok_or_else(|| BackendError::Device("stream capture produced no graph".into()))?;
    g.upload().map_err(|e| dev("cuGraphUpload", e))?;
    Ok(g)
}

/// Fills and uploads the chunk's row metadata. Flash query tiles: runs of consecutive
/// positions of one sequence, at most `flash_qt` rows each (they share K/V loads, never
/// arithmetic). Returns the chunk's shape and the splits its furthest row needs.
fn upload_meta(
    st: &mut State,
    k: &Kernels,
    s: &Arc<CudaStream>,
    rows: &[StepRow],
    greedy: bool,
) -> Result<(Shape, usize), BackendError> {
    let n = rows.len();
    // The previous chunk's upload must have left `host_meta` before it is overwritten.
    st.meta_copied
        .synchronize()
        .map_err(|e| dev("cuEventSynchronize", e))?;
    let meta = st
        .host_meta
        .as_mut_slice()
        .map_err(|e| dev("pinned row metadata", e))?;
    let mut kept = 0;
    for (i, r) in rows.iter().enumerate() {
        meta[TOK + i] = r.token as i32;
        meta[SLOT + i] = r.slot as i32;
        meta[POS + i] = r.pos as i32;
        meta[STEPS + i] = 0;
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
    let mut seen = vec![false; st.slots];
    let single = rows
        .iter()
        .all(|r| !std::mem::replace(&mut seen[r.slot], true));
    copy_htod(&st.meta, 0, &meta[..], s)?;
    st.meta_copied
        .record(s)
        .map_err(|e| dev("cuEventRecord", e))?;
    let n_splits = rows
        .iter()
        .map(|r| r.pos / FLASH_SPLIT + 1)
        .max()
        .unwrap_or(1);
    Ok((
        Shape {
            n,
            n_tiles,
            qt,
            kept,
            single,
            greedy,
        },
        n_splits,
    ))
}

/// Copies what `enqueue_logits` computed for `g` kept rows to the host: their logits, or
/// their greedy ids.
fn fetch(
    st: &mut State,
    s: &Arc<CudaStream>,
    g: usize,
    vocab: usize,
    out: &mut Out<'_>,
) -> Result<(), BackendError> {
    match out {
        Out::Logits(logits) => {
            let host = st
                .host_logits
                .as_mut_slice()
                .map_err(|e| dev("pinned logits", e))?;
            copy_dtoh(&st.logits, 0, &mut host[..g * vocab], s)?;
            logits.extend_from_slice(&host[..g * vocab]);
        }
        Out::Greedy(next) => fetch_ids(st, s, g, next)?,
    }
    Ok(())
}

/// Appends the first `count` greedy ids (argmax.cu's [step][row] order) to `next`.
fn fetch_ids(
    st: &mut State,
    s: &Arc<CudaStream>,
    count: usize,
    next: &mut Vec<u32>,
) -> Result<(), BackendError> {
    let host = st
        .host_ids
        .as_mut_slice()
        .map_err(|e| dev("pinned greedy ids", e))?;
    copy_dtoh(&st.argmax_out, 0, &mut host[..count], s)?;
    next.extend_from_slice(&host[..count]);
    Ok(())
}

/// Embedding and every layer of one chunk (rows described by the uploaded metadata).
fn enqueue_layers(
    pass: Pass<'_>,
    st: &State,
    shape: Shape,
    n_splits: usize,
) -> Result<(), BackendError> {
    let Pass { cfg, p, w, k, s } = pass;
    let bf16 = p.dtype == Dtype::Bf16;
    let Shape {
        n,
        n_tiles,
        qt,
        single,
        ..
    } = shape;
    let (d, kv, hd, ff) = (cfg.n_embd, cfg.kv_dim(), cfg.head_dim, cfg.n_ff);
    let eps = cfg.rms_eps;
    let at = |off: usize| st.meta.at::<i32>(off);
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
    let fast = st.fast.as_ref().map(|(xh, acc)| FastScratch {
        xh: xh.ptr(),
        acc: acc.ptr(),
    });
    let fast = fast.as_ref();
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
        let attn_norm = Norm {
            w: lw.attn_norm.ptr(),
            eps,
            rows: 0,
            scratch: xb,
        };
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
            &Gemm {
                x,
                norm: Some(&attn_norm),
                n,
                k: d,
                w: lw.qkv.ptr(),
                m: d + 2 * kv,
                epi: Epi::Qkv,
                round: bf16,
                out: q,
                ldo: d,
                qkv: &qkv,
            },
            fast,
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
                    st.merge_cnt.ptr(),
                    single,
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
        // [bf16] output projection; residual after the add (fused epilogue). The decode matmul
        // reads x's old values before waiting on the attention (matmul.cu): no kernel between
        // the last write of x and a residual projection may write x.
        let o_proj = Gemm {
            x: att,
            norm: None,
            n,
            k: d,
            w: lw.o.ptr(),
            m: d,
            epi: Epi::Residual,
            round: bf16,
            out: x,
            ldo: d,
            qkv: &plain,
        };
        k.matmul(s, &o_proj, fast)?;

        // Feed-forward block (SwiGLU). [bf16] norm output; gate, up; silu(gate)·up (fused
        // epilogue over interleaved gate/up rows); down; residual after the add.
        let ffn_norm = Norm {
            w: lw.ffn_norm.ptr(),
            ..attn_norm
        };
        k.matmul(
            s,
            &Gemm {
                x,
                norm: Some(&ffn_norm),
                n,
                k: d,
                w: lw.gate_up.ptr(),
                m: 2 * ff,
                epi: Epi::Swiglu,
                round: bf16,
                out: ffb,
                ldo: ff,
                qkv: &plain,
            },
            fast,
        )?;
        // [bf16] down projection; residual after the add, as the output projection.
        let down = Gemm {
            x: ffb,
            k: ff,
            w: lw.down.ptr(),
            ..o_proj
        };
        k.matmul(s, &down, fast)?;
    }

    Ok(())
}

/// Logits of kept rows g0..g0+g (at most LOGIT_ROWS): [bf16] final norm output; f32
/// accumulation, not rounded. In greedy chunks, then each row's greedy id.
fn enqueue_logits(
    pass: Pass<'_>,
    st: &State,
    g0: usize,
    shape: Shape,
    g: usize,
) -> Result<(), BackendError> {
    let Pass { cfg, w, k, s, .. } = pass;
    let out_w = w.output.as_ref().unwrap_or(&w.embd).ptr();
    let norm = Norm {
        w: w.out_norm.ptr(),
        eps: cfg.rms_eps,
        rows: st.meta.at::<i32>(KEPT + g0),
        scratch: st.xn.ptr(),
    };
    k.matmul(
        s,
        &Gemm {
            x: st.x.ptr(),
            norm: Some(&norm),
            n: g,
            k: cfg.n_embd,
            w: out_w,
            m: cfg.vocab,
            epi: Epi::Store,
            round: false,
            out: st.logits.ptr(),
            ldo: cfg.vocab,
            qkv: &QkvArgs::default(),
        },
        None,
    )?;
    if shape.greedy {
        let at = |off: usize| st.meta.at::<i32>(off);
        k.argmax(
            s,
            &ArgmaxArgs {
                rows: g,
                logits: st.logits.ptr(),
                vocab: cfg.vocab,
                kept: at(KEPT + g0),
                keys: st.argmax_keys.ptr(),
                counts: st.argmax_counts.ptr(),
                out: st.argmax_out.ptr(),
                steps: at(STEPS),
                tok: at(TOK),
                pos: at(POS),
                // A decode step's rows are one per sequence: each row's next step is itself
                // one position on (what `decode_greedy` replays).
                advance: shape.single,
            },
        )?;
    }
    Ok(())
}
