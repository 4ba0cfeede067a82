//! The CPU backend's memory: a byte budget (`--mem-limit`, the CPU's stand-in for a GPU's
//! memory size) with a high-water mark, and fallible allocation of the cache and scratch.

use std::cell::Cell;

use crate::backend::BackendError;
use crate::model::LlamaConfig;

use super::{State, CHUNK_ROWS};

pub(crate) struct Budget {
    limit: Option<u64>,
    used: Cell<u64>,
    high: Cell<u64>,
}

impl Budget {
    pub fn new(limit: Option<u64>) -> Self {
        Budget {
            limit,
            used: Cell::new(0),
            high: Cell::new(0),
        }
    }

    /// Accounts for `bytes` more, or fails with OutOfMemory naming `what`.
    pub fn take(&self, bytes: u64, what: &str) -> Result<(), BackendError> {
        let now = self.used.get().saturating_add(bytes);
        if let Some(limit) = self.limit {
            if now > limit {
                return Err(oom(
                    what,
                    bytes,
                    limit.saturating_sub(self.used.get()),
                    Some(limit),
                ));
            }
        }
        self.used.set(now);
        self.high.set(self.high.get().max(now));
        Ok(())
    }

    pub fn give(&self, bytes: u64) {
        self.used.set(self.used.get().saturating_sub(bytes));
    }

    pub fn used(&self) -> u64 {
        self.used.get()
    }

    pub fn high_water(&self) -> u64 {
        self.high.get()
    }
}

fn oom(what: &str, bytes: u64, available: u64, limit: Option<u64>) -> BackendError {
    BackendError::OutOfMemory {
        what: what.to_string(),
        requested_mb: bytes as f64 / 1e6,
        available_mb: available as f64 / 1e6,
        limit: match limit {
            Some(l) => format!("--mem-limit {} MB", l / 1_000_000),
            None => "system allocator".into(),
        },
    }
}

/// An empty Vec with room for `n` elements; a failed allocation is OutOfMemory, not an abort.
pub(crate) fn try_vec<T>(n: usize, what: &str, budget: &Budget) -> Result<Vec<T>, BackendError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| oom(what, (n * std::mem::size_of::<T>()) as u64, 0, budget.limit))?;
    Ok(v)
}

fn zeros(n: usize, what: &str, budget: &Budget) -> Result<Vec<f32>, BackendError> {
    budget.take(n as u64 * 4, what)?;
    let mut v = try_vec::<f32>(n, what, budget)?;
    v.resize(n, 0.0);
    Ok(v)
}

pub(crate) fn state_bytes(s: &State) -> u64 {
    let n: usize = s
        .k_cache
        .iter()
        .chain(&s.v_cache)
        .map(Vec::len)
        .sum::<usize>()
        + [
            &s.cos, &s.sin, &s.x, &s.xb, &s.q, &s.k, &s.v, &s.att, &s.proj, &s.gate, &s.up,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
    n as u64 * 4
}

/// Allocates the KV cache for `slots` × `max_ctx` positions and one chunk of scratch.
pub(crate) fn allocate_state(
    cfg: &LlamaConfig,
    slots: usize,
    max_ctx: usize,
    budget: &mut Budget,
) -> Result<State, BackendError> {
    let kv = cfg.kv_dim();
    let per_layer = crate::backend::kv_cache_elems(cfg, slots, max_ctx)?;
    let mut k_cache = Vec::with_capacity(cfg.n_layer);
    let mut v_cache = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        k_cache.push(zeros(
            per_layer,
            &format!("KV cache (layer {l} keys)"),
            budget,
        )?);
        v_cache.push(zeros(
            per_layer,
            &format!("KV cache (layer {l} values)"),
            budget,
        )?);
    }
    let half = cfg.head_dim / 2;
    budget.take(2 * (max_ctx * half) as u64 * 4, "RoPE table")?;
    let (cos, sin) = cfg.rope_table(max_ctx);
    let r = CHUNK_ROWS;
    Ok(State {
        slots,
        max_ctx,
        k_cache,
        v_cache,
        cos,
        sin,
        x: zeros(r * cfg.n_embd, "scratch", budget)?,
        xb: zeros(r * cfg.n_embd, "scratch", budget)?,
        q: zeros(r * cfg.n_embd, "scratch", budget)?,
        k: zeros(r * kv, "scratch", budget)?,
        v: zeros(r * kv, "scratch", budget)?,
        att: zeros(r * cfg.n_embd, "scratch", budget)?,
        proj: zeros(r * cfg.n_embd, "scratch", budget)?,
        gate: zeros(r * cfg.n_ff, "scratch", budget)?,
        up: zeros(r * cfg.n_ff, "scratch", budget)?,
    })
}
