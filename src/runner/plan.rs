//! From flags to cells: the mode preset with every flag applied ([`resolve`]), its expansion into
//! the Cartesian product of cells plus batch-1 reference twins ([`expand`]), and one cell's
//! engine command line ([`engine_args`]).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tracecheck_engine::trace::{AttnImpl, CellConfig, Dtype, Numerics, PlannedCell};

use super::args::RunArgs;
use super::checks::PromptIdsInfo;
use super::error::RunError;
use crate::modes;

/// Backends the bundled engine knows; a typo is caught before any cell starts.
pub const KNOWN_BACKENDS: &[&str] = &["cpu", "cuda"];

/// A sweep's settings: the preset with every flag applied, checked for consistency.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub mode: String,
    pub out: PathBuf,
    pub model: String,
    pub backends: Vec<String>,
    /// Ascending, no duplicates.
    pub batches: Vec<usize>,
    /// Ascending, no duplicates.
    pub ctx: Vec<usize>,
    pub gen: usize,
    pub span: usize,
    pub dtype: Dtype,
    pub numerics: Numerics,
    pub attn: Vec<AttnImpl>,
    pub kv_aligned: bool,
    pub seed: u64,
    pub variant: Option<String>,
    pub max_ctx: Option<usize>,
    pub prompt_ids: Option<PathBuf>,
    /// Per phase.
    pub timeout: Duration,
    pub vram_period_s: f64,
    pub mem_limit_mb: Option<u64>,
    pub threads: Option<usize>,
    pub force: bool,
}

/// Applies `args` to the mode's preset (the `--quick` one with `--quick`). `prompt_ids` is the
/// already-read `--prompt-ids` file: its length is the context, and it must hold a prompt for
/// every sequence of the largest batch.
pub fn resolve(args: &RunArgs, prompt_ids: Option<&PromptIdsInfo>) -> Result<SweepPlan, RunError> {
    let preset = modes::preset(&args.mode)?;
    let m = preset.matrix(args.quick);

    let backends = match &args.backend {
        Some(text) => parse_list::<String>("backend", text)?,
        None => m.backend,
    };
    if let Some(b) = backends
        .iter()
        .find(|b| !KNOWN_BACKENDS.contains(&b.as_str()))
    {
        return Err(RunError::flag(
            "backend",
            backends.join(","),
            format!(
                "unknown backend `{b}` (known: {})",
                KNOWN_BACKENDS.join(", ")
            ),
        ));
    }
    let mut batches = match &args.batches {
        Some(text) => parse_counts("batches", text)?,
        None => m.batches,
    };
    let mut ctx = match &args.ctx {
        Some(text) => parse_counts("ctx", text)?,
        None => m.ctx,
    };
    let mut attn = match &args.attn {
        Some(text) => parse_list::<AttnImpl>("attn", text)?,
        None => m.attn,
    };
    let gen = args.gen.unwrap_or(m.gen);
    let span = args.span.unwrap_or(m.span);
    if gen == 0 {
        return Err(RunError::flag("gen", "0", "must be at least 1"));
    }
    if span == 0 {
        return Err(RunError::flag("span", "0", "must be at least 1"));
    }
    if span > gen {
        return Err(RunError::SpanExceedsGen { span, gen });
    }
    let numerics = args.numerics.unwrap_or(m.numerics);
    if numerics == Numerics::Fast && backends.iter().any(|b| b == "cpu") {
        return Err(RunError::FastOnCpu);
    }
    let timeout_s = args.timeout.unwrap_or(m.timeout_s);
    let timeout = positive_seconds("timeout", timeout_s)?;
    let vram_period_s = args.vram_period.unwrap_or(m.vram_period_s);
    positive_seconds("vram-period", vram_period_s)?;
    if args.threads == Some(0) {
        return Err(RunError::flag("threads", "0", "must be at least 1"));
    }
    // Preset lists are data too: keep them as tidy as flag lists.
    for (flag, list) in [("batches", &mut batches), ("ctx", &mut ctx)] {
        if list.is_empty() || list.contains(&0) {
            return Err(RunError::flag(
                flag,
                join(list),
                "needs values of at least 1",
            ));
        }
        list.sort_unstable();
        list.dedup();
    }
    dedup_in_order(&mut attn);
    let max_batch = batches.last().copied().unwrap_or(1);

    if let Some(ids) = prompt_ids {
        // The file fixes P; a --ctx that says otherwise is a contradiction, a preset's is not.
        if args.ctx.is_some() && ctx != [ids.len] {
            return Err(RunError::BadPromptIds {
                path: ids.path.clone(),
                fault: format!(
                    "its prompts have {} ids but --ctx is {}",
                    ids.len,
                    join(&ctx)
                ),
            });
        }
        ctx = vec![ids.len];
        if let Some(count) = ids.count {
            if count < max_batch {
                return Err(RunError::BadPromptIds {
                    path: ids.path.clone(),
                    fault: format!(
                        "holds {count} prompts, but batch {max_batch} needs prompts 0 to {}",
                        max_batch - 1
                    ),
                });
            }
        }
    }
    if let Some(cap) = args.max_ctx {
        if let Some(&c) = ctx.iter().find(|&&c| c + gen > cap) {
            return Err(RunError::ExceedsMaxCtx {
                ctx: c,
                gen,
                max_ctx: cap,
            });
        }
    }
    Ok(SweepPlan {
        mode: preset.name,
        out: args.out.clone(),
        model: args.model.clone().unwrap_or(m.model),
        backends,
        batches,
        ctx,
        gen,
        span,
        dtype: args.dtype.unwrap_or(m.dtype),
        numerics,
        attn,
        kv_aligned: args.kv_aligned.unwrap_or(m.kv_aligned),
        seed: args.seed.unwrap_or(m.seed),
        variant: args.variant.clone().filter(|v| !v.is_empty()),
        max_ctx: args.max_ctx,
        prompt_ids: args.prompt_ids.clone(),
        timeout,
        vram_period_s,
        mem_limit_mb: args.mem_limit,
        threads: args.threads,
        force: args.force,
    })
}

/// Every cell of the sweep: backend × ctx × attn × batch (prompt offset 0), plus a batch-1
/// reference cell at every prompt offset below the largest batch that the matrix lacks, so
/// every sequence of every batch has its batch-1 twin. Cheap cells first within each group:
/// by batch, then offset.
pub fn expand(plan: &SweepPlan) -> Vec<PlannedCell> {
    let max_batch = plan.batches.last().copied().unwrap_or(1);
    let mut cells = Vec::new();
    for backend in &plan.backends {
        for &ctx in &plan.ctx {
            for &attn_impl in &plan.attn {
                let base = CellConfig {
                    batch: 1,
                    prompt_offset: 0,
                    ctx,
                    gen: plan.gen,
                    span: plan.span,
                    dtype: plan.dtype,
                    numerics: plan.numerics,
                    attn_impl,
                    variant: plan.variant.clone(),
                    kv_aligned: plan.kv_aligned,
                    seed: plan.seed,
                };
                let mut group: Vec<PlannedCell> = plan
                    .batches
                    .iter()
                    .map(|&batch| {
                        let config = CellConfig {
                            batch,
                            ..base.clone()
                        };
                        PlannedCell::new(backend, config, false)
                    })
                    .collect();
                let has_b1 = plan.batches.contains(&1);
                for offset in 0..max_batch {
                    if offset == 0 && has_b1 {
                        continue;
                    }
                    group.push(PlannedCell::new(backend, base.twin(offset), true));
                }
                group.sort_by_key(|c| (c.config.batch, c.config.prompt_offset));
                cells.extend(group);
            }
        }
    }
    // Backends spelled alike after sanitising would collide; keep the first.
    let mut seen = HashSet::new();
    cells.retain(|c| seen.insert(c.key.clone()));
    cells
}

/// The engine arguments (after the program) that capture `cell`. `force` lets the engine
/// replace a cell directory that is there (a failed cell being re-run, or `--force`).
pub fn engine_args(plan: &SweepPlan, cell: &PlannedCell, force: bool) -> Vec<OsString> {
    let c = &cell.config;
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |flag: &str, value: OsString| {
        a.push(flag.into());
        a.push(value);
    };
    push("--out", plan.out.clone().into());
    push("--mode", plan.mode.clone().into());
    push("--model", plan.model.clone().into());
    push("--backend", cell.backend.clone().into());
    push("--batch", c.batch.to_string().into());
    push("--prompt-offset", c.prompt_offset.to_string().into());
    push("--ctx", c.ctx.to_string().into());
    push("--gen", c.gen.to_string().into());
    push("--span", c.span.to_string().into());
    push("--dtype", c.dtype.as_str().into());
    push("--numerics", c.numerics.as_str().into());
    push("--attn", c.attn_impl.as_str().into());
    push("--kv-aligned", c.kv_aligned.to_string().into());
    push("--seed", c.seed.to_string().into());
    push("--vram-period", plan.vram_period_s.to_string().into());
    if let Some(v) = &c.variant {
        push("--variant", v.clone().into());
    }
    if let Some(n) = plan.max_ctx {
        push("--max-ctx", n.to_string().into());
    }
    if let Some(p) = &plan.prompt_ids {
        push("--prompt-ids", p.clone().into());
    }
    if let Some(mb) = plan.mem_limit_mb {
        push("--mem-limit", mb.to_string().into());
    }
    if let Some(n) = plan.threads {
        push("--threads", n.to_string().into());
    }
    let mut args = vec![OsString::from("capture")];
    args.append(&mut a);
    if force {
        args.push("--force".into());
    }
    args
}

/// Comma-separated values, blanks around items allowed, duplicates dropped (first kept).
fn parse_list<T>(flag: &'static str, text: &str) -> Result<Vec<T>, RunError>
where
    T: FromStr + PartialEq,
    T::Err: std::fmt::Display,
{
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(RunError::flag(flag, text, "has an empty item"));
        }
        let v = item
            .parse::<T>()
            .map_err(|e| RunError::flag(flag, text, format!("`{item}`: {e}")))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn parse_counts(flag: &'static str, text: &str) -> Result<Vec<usize>, RunError> {
    let list = parse_list::<usize>(flag, text)?;
    if list.contains(&0) {
        return Err(RunError::flag(flag, text, "values must be at least 1"));
    }
    Ok(list)
}

fn positive_seconds(flag: &'static str, s: f64) -> Result<Duration, RunError> {
    // NaN fails this too.
    if !s.is_finite() || s <= 0.0 {
        return Err(RunError::flag(
            flag,
            s.to_string(),
            "must be a positive number of seconds",
        ));
    }
    Duration::try_from_secs_f64(s).map_err(|_| RunError::flag(flag, s.to_string(), "is too large"))
}

fn dedup_in_order<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    *v = out;
}

fn join(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: &str) -> RunArgs {
        RunArgs {
            mode: mode.into(),
            out: "sweep".into(),
            quick: true,
            ..RunArgs::default()
        }
    }

    fn keys(cells: &[PlannedCell]) -> Vec<&str> {
        cells.iter().map(|c| c.key.as_str()).collect()
    }

    #[test]
    fn quick_b3_81_adds_twins_for_offsets_1_to_3() {
        let plan = resolve(&args("b3_81"), None).unwrap();
        let cells = expand(&plan);
        let k = |b: usize, p: usize| {
            format!("cpu_b{b}_p{p}_ctx128_gen16_span8_f32_invariant_flash_kv1_s0")
        };
        assert_eq!(
            keys(&cells),
            [k(1, 0), k(1, 1), k(1, 2), k(1, 3), k(2, 0), k(4, 0)]
        );
        let refs: Vec<usize> = cells
            .iter()
            .filter(|c| c.reference)
            .map(|c| c.config.prompt_offset)
            .collect();
        assert_eq!(refs, [1, 2, 3]);
        assert!(cells.iter().all(|c| !c.reference || c.config.batch == 1));
        assert_eq!(plan.timeout, Duration::from_secs(600));
        assert_eq!(plan.model, "smollm2-135m");
    }

    #[test]
    fn quick_b3_77_and_b3_89() {
        let cells = expand(&resolve(&args("b3_77"), None).unwrap());
        assert_eq!(
            keys(&cells),
            ["cpu_b1_p0_ctx256_gen16_span16_f32_invariant_flash_kv1_s0"]
        );
        let cells = expand(&resolve(&args("b3_89"), None).unwrap());
        assert_eq!(cells.len(), 6);
        assert!(cells.iter().all(|c| !c.reference && c.config.batch == 1));
        assert_eq!(
            cells[0].key,
            "cpu_b1_p0_ctx64_gen1_span1_f32_invariant_naive_kv1_s0"
        );
        assert_eq!(
            cells[5].key,
            "cpu_b1_p0_ctx256_gen1_span1_f32_invariant_flash_kv1_s0"
        );
    }

    #[test]
    fn full_preset_and_overrides() {
        let mut a = args("b3_81");
        a.quick = false;
        let plan = resolve(&a, None).unwrap();
        assert_eq!(
            (plan.dtype, plan.backends.as_slice()),
            (Dtype::Bf16, &["cuda".to_string()][..])
        );
        assert_eq!(expand(&plan).len(), 4 + 7);

        let a = RunArgs {
            backend: Some("cpu, cuda".into()),
            model: Some("dummy:tiny".into()),
            batches: Some("4,2,2".into()),
            ctx: Some("32,16".into()),
            gen: Some(4),
            span: Some(2),
            dtype: Some(Dtype::Bf16),
            attn: Some("naive".into()),
            kv_aligned: Some(false),
            seed: Some(7),
            timeout: Some(1.5),
            vram_period: Some(0.25),
            variant: Some("v2".into()),
            ..args("b3_81")
        };
        let plan = resolve(&a, None).unwrap();
        assert_eq!(plan.batches, [2, 4]);
        assert_eq!(plan.ctx, [16, 32]);
        assert_eq!(plan.timeout, Duration::from_millis(1500));
        let cells = expand(&plan);
        // Per (backend, ctx): batches 2 and 4 plus twins at offsets 0..=3.
        assert_eq!(cells.len(), 2 * 2 * (2 + 4));
        assert_eq!(
            cells[0].key,
            "cpu_b1_p0_ctx16_gen4_span2_bf16_invariant_naive_kv0_s7_vv2"
        );
        assert!(
            cells[0].reference,
            "batch 1 is not in the matrix: p0 is a twin"
        );
        assert_eq!(cells.last().unwrap().backend, "cuda");
    }

    #[test]
    fn engine_args_carry_every_setting() {
        let a = RunArgs {
            model: Some("dummy:tiny".into()),
            max_ctx: Some(1000),
            mem_limit: Some(512),
            threads: Some(2),
            variant: Some("x".into()),
            prompt_ids: Some("ids.json".into()),
            ..args("b3_81")
        };
        let info = PromptIdsInfo {
            path: "ids.json".into(),
            len: 128,
            count: None,
        };
        let plan = resolve(&a, Some(&info)).unwrap();
        let cell = &expand(&plan)[1];
        let argv: Vec<String> = engine_args(&plan, cell, true)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let s = argv.join(" ");
        assert_eq!(
            s,
            "capture --out sweep --mode b3_81 --model dummy:tiny --backend cpu --batch 1 \
             --prompt-offset 1 --ctx 128 --gen 16 --span 8 --dtype f32 --numerics invariant \
             --attn flash --kv-aligned true --seed 0 --vram-period 1 --variant x --max-ctx 1000 \
             --prompt-ids ids.json --mem-limit 512 --threads 2 --force"
        );
    }

    #[test]
    fn bad_values_are_specific_errors() {
        let err = |a: RunArgs| resolve(&a, None).unwrap_err().to_string();
        assert_eq!(
            err(RunArgs {
                batches: Some("1,x".into()),
                ..args("b3_81")
            }),
            "--batches 1,x: `x`: invalid digit found in string"
        );
        assert_eq!(
            err(RunArgs {
                batches: Some("1,,2".into()),
                ..args("b3_81")
            }),
            "--batches 1,,2: has an empty item"
        );
        assert_eq!(
            err(RunArgs {
                ctx: Some("0".into()),
                ..args("b3_81")
            }),
            "--ctx 0: values must be at least 1"
        );
        assert!(err(RunArgs {
            attn: Some("sdpa".into()),
            ..args("b3_81")
        })
        .starts_with("--attn sdpa: `sdpa`: unknown attention implementation"));
        assert_eq!(
            err(RunArgs {
                backend: Some("cdua".into()),
                ..args("b3_81")
            }),
            "--backend cdua: unknown backend `cdua` (known: cpu, cuda)"
        );
        assert_eq!(
            err(RunArgs {
                span: Some(17),
                ..args("b3_81")
            }),
            "--span 17 exceeds --gen 16: only generated positions can be compared"
        );
        assert!(matches!(
            resolve(
                &RunArgs {
                    numerics: Some(Numerics::Fast),
                    ..args("b3_81")
                },
                None
            ),
            Err(RunError::FastOnCpu)
        ));
        // fast is fine on cuda only.
        let cuda = RunArgs {
            numerics: Some(Numerics::Fast),
            backend: Some("cuda".into()),
            ..args("b3_81")
        };
        assert!(resolve(&cuda, None).is_ok());
        assert_eq!(
            err(RunArgs {
                max_ctx: Some(100),
                ..args("b3_81")
            }),
            "ctx 128 + gen 16 = 144 positions exceed --max-ctx 100"
        );
        assert_eq!(
            err(RunArgs {
                timeout: Some(0.0),
                ..args("b3_81")
            }),
            "--timeout 0: must be a positive number of seconds"
        );
        assert!(err(RunArgs {
            timeout: Some(f64::NAN),
            ..args("b3_81")
        })
        .starts_with("--timeout NaN"));
        assert_eq!(
            err(RunArgs {
                mode: "b3_1".into(),
                ..args("b3_81")
            }),
            "unknown mode `b3_1` (known modes: b3_81, b3_77, b3_89)"
        );
    }

    #[test]
    fn prompt_ids_fix_ctx_and_need_enough_prompts() {
        let info = |count| PromptIdsInfo {
            path: "p.json".into(),
            len: 10,
            count,
        };
        let plan = resolve(&args("b3_81"), Some(&info(Some(4)))).unwrap();
        assert_eq!(plan.ctx, [10]);
        let e = resolve(&args("b3_81"), Some(&info(Some(3)))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--prompt-ids p.json: holds 3 prompts, but batch 4 needs prompts 0 to 3"
        );
        let a = RunArgs {
            ctx: Some("12".into()),
            ..args("b3_81")
        };
        let e = resolve(&a, Some(&info(None))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--prompt-ids p.json: its prompts have 10 ids but --ctx is 12"
        );
    }
}
