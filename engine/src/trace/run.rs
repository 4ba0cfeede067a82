//! run.json: one cell's record (DESIGN "Trace format v1").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::trace::atomic::write_file_atomic;
use crate::trace::config::{named_enum, CellConfig};
use crate::trace::schema::{parse_validated, run_schema};
use crate::trace::{TraceError, SCHEMA_VERSION};

named_enum! {
    /// How a cell ended. Written by the engine (OK) or by the runner for cells that did not
    /// finish (everything else), from the engine's exit status.
    pub enum Status ("status") {
        Ok = "OK",
        FailBadInput = "FAIL_BAD_INPUT",
        FailOom = "FAIL_OOM",
        FailTimeout = "FAIL_TIMEOUT",
        SkippedUnsupportedBatch = "SKIPPED_UNSUPPORTED_BATCH",
        FailCrash = "FAIL_CRASH",
    }
}

impl Status {
    /// True for a cell that finished and has logits.
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }
}

/// The engine that produced the cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
    /// Source revision (git sha), when known.
    #[serde(default)]
    pub revision: Option<String>,
    /// e.g. `cpu`, `cuda`; the first part of the cell key.
    pub backend: String,
    /// CPU model or GPU name.
    pub device: String,
    #[serde(default)]
    pub driver: Option<String>,
}

/// The model the cell ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub arch: String,
    /// Hex sha256 of the weights file (or of the `dummy:` spec).
    pub sha256: String,
    pub vocab: usize,
    /// The context length the model was trained for.
    pub n_ctx_train: usize,
    /// The KV capacity the cell used (P + gen, raised above `n_ctx_train` when needed).
    pub max_ctx: usize,
}

/// Token ids per sequence (row b = sequence b).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub prompt: Vec<Vec<u32>>,
    pub generated: Vec<Vec<u32>>,
}

/// Phase durations in seconds (DESIGN "Timings").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub setup_s: f64,
    pub model_load_s: f64,
    pub tokenize_s: f64,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub reference_prefill_s: f64,
    pub wall_s: f64,
}

/// Device memory over the cell's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// How it was measured: `nvml`, `cuMemGetInfo` or `rss`.
    pub source: String,
    pub period_s: f64,
    /// What the driver held before model load, reported apart.
    pub baseline_mb: f64,
    /// (seconds since start, MB) at the period and at every phase boundary.
    pub samples: Vec<(f64, f64)>,
    pub peak_mb: f64,
    pub peak_t_s: f64,
    /// The allocator's high-water mark.
    pub high_water_mb: f64,
}

/// run.json. A status-only record (a cell that did not finish, written by the runner) has
/// `engine`, `model`, `tokens`, `timings` and `memory` as `None`; status OK requires them all
/// (enforced by the schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always [`SCHEMA_VERSION`] when read (other versions are refused before parsing).
    pub schema_version: u32,
    pub mode: String,
    pub status: Status,
    pub argv: Vec<String>,
    /// A human message for a cell that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInfo>,
    /// True when P + gen exceeded `n_ctx_train` and the KV capacity was raised to it.
    #[serde(default)]
    pub max_ctx_raised: bool,
    pub config: CellConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

impl RunRecord {
    /// A record for a cell that did not finish: no engine, model, tokens, timings or memory.
    pub fn status_only(
        mode: impl Into<String>,
        status: Status,
        argv: Vec<String>,
        config: CellConfig,
        error: Option<String>,
    ) -> RunRecord {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            mode: mode.into(),
            status,
            argv,
            error,
            engine: None,
            model: None,
            max_ctx_raised: false,
            config,
            tokens: None,
            timings: None,
            memory: None,
        }
    }

    /// Reads and validates `path` (schema first, then types).
    pub fn read(path: &Path) -> Result<RunRecord, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
        Self::from_json_str(path, &text)
    }

    /// Parses run.json text; `path` only names the source in errors.
    pub fn from_json_str(path: &Path, text: &str) -> Result<RunRecord, TraceError> {
        let value = parse_validated(path, text, run_schema())?;
        serde_json::from_value(value).map_err(|e| TraceError::json(path, e))
    }

    /// Pretty JSON, checked against the schema first so that nothing this library writes is
    /// rejected by its reader (e.g. a NaN timing would become `null`).
    pub fn to_json_checked(&self, path: &Path) -> Result<String, TraceError> {
        let value = serde_json::to_value(self).map_err(|e| TraceError::json(path, e))?;
        let problems = run_schema().validate(&value);
        if !problems.is_empty() {
            return Err(TraceError::Schema {
                path: path.to_path_buf(),
                problems,
            });
        }
        let mut text =
            serde_json::to_string_pretty(&value).map_err(|e| TraceError::json(path, e))?;
        text.push('\n');
        Ok(text)
    }

    /// Writes `path` atomically after checking the record against the schema.
    pub fn write(&self, path: &Path) -> Result<(), TraceError> {
        let text = self.to_json_checked(path)?;
        write_file_atomic(path, text.as_bytes())
    }

    /// The cell's logits dimensions (batch, span, vocab), when the model is known.
    pub fn logits_dims(&self) -> Option<(usize, usize, usize)> {
        let model = self.model.as_ref()?;
        Some((self.config.batch, self.config.span, model.vocab))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::config::{AttnImpl, Dtype, Numerics};
    use std::path::PathBuf;

    pub(crate) fn sample_config() -> CellConfig {
        CellConfig {
            batch: 2,
            prompt_offset: 0,
            ctx: 4,
            gen: 3,
            span: 2,
            dtype: Dtype::Bf16,
            numerics: Numerics::Invariant,
            attn_impl: AttnImpl::Flash,
            variant: None,
            kv_aligned: true,
            seed: 0,
        }
    }

    /// A complete, consistent OK record: batch 2, ctx 4, gen 3, span 2, vocab 5.
    pub(crate) fn sample_ok() -> RunRecord {
        RunRecord {
            schema_version: 1,
            mode: "b3_81".into(),
            status: Status::Ok,
            argv: vec!["tracecheck-engine".into(), "capture".into()],
            error: None,
            engine: Some(EngineInfo {
                name: "tracecheck-engine".into(),
                version: "0.1.0".into(),
                revision: None,
                backend: "cpu".into(),
                device: "Test CPU".into(),
                driver: None,
            }),
            model: Some(ModelInfo {
                name: "tiny".into(),
                arch: "llama".into(),
                sha256: "ab".repeat(32),
                vocab: 5,
                n_ctx_train: 16,
                max_ctx: 16,
            }),
            max_ctx_raised: false,
            config: sample_config(),
            tokens: Some(Tokens {
                prompt: vec![vec![1, 2, 3, 4], vec![4, 3, 2, 1]],
                generated: vec![vec![0, 1, 2], vec![2, 1, 0]],
            }),
            timings: Some(Timings {
                setup_s: 0.5,
                model_load_s: 0.25,
                tokenize_s: 0.0,
                prefill_s: 0.125,
                decode_s: 1.0 / 3.0,
                reference_prefill_s: 0.1,
                wall_s: 2.0,
            }),
            memory: Some(Memory {
                source: "rss".into(),
                period_s: 1.0,
                baseline_mb: 0.0,
                samples: vec![(0.0, 10.0), (0.7, 12.5)],
                peak_mb: 12.5,
                peak_t_s: 0.7,
                high_water_mb: 13.0,
            }),
        }
    }

    fn p() -> PathBuf {
        PathBuf::from("cell/run.json")
    }

    #[test]
    fn ok_record_round_trips() {
        let r = sample_ok();
        let text = r.to_json_checked(&p()).unwrap();
        assert_eq!(RunRecord::from_json_str(&p(), &text).unwrap(), r);
        // DESIGN's shape: nullable fields written as null, samples as pairs.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["engine"]["revision"].is_null());
        assert!(v["config"]["variant"].is_null());
        assert_eq!(v["status"], "OK");
        assert_eq!(v["memory"]["samples"][1], serde_json::json!([0.7, 12.5]));
        assert!(v.get("error").is_none());
    }

    #[test]
    fn status_only_round_trips_and_omits_sections() {
        let r = RunRecord::status_only(
            "b3_81",
            Status::FailOom,
            vec!["x".into()],
            sample_config(),
            Some("CUDA out of memory".into()),
        );
        let text = r.to_json_checked(&p()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "FAIL_OOM");
        for k in ["engine", "model", "tokens", "timings", "memory"] {
            assert!(v.get(k).is_none(), "{k} written");
        }
        assert_eq!(RunRecord::from_json_str(&p(), &text).unwrap(), r);
    }

    #[test]
    fn ok_without_sections_is_refused_on_write() {
        let mut r = sample_ok();
        r.memory = None;
        let err = r.to_json_checked(&p()).unwrap_err().to_string();
        assert!(err.contains("/memory: missing required field"), "{err}");
    }

    #[test]
    fn nan_timing_is_refused_on_write() {
        let mut r = sample_ok();
        r.timings.as_mut().unwrap().decode_s = f64::NAN;
        let err = r.to_json_checked(&p()).unwrap_err().to_string();
        assert!(
            err.contains("/timings/decode_s: expected number, found null"),
            "{err}"
        );
    }

    #[test]
    fn status_names() {
        for s in Status::ALL {
            assert_eq!(s.to_string().parse::<Status>().unwrap(), *s);
        }
        assert_eq!(
            Status::SkippedUnsupportedBatch.as_str(),
            "SKIPPED_UNSUPPORTED_BATCH"
        );
        assert_eq!(
            serde_json::to_string(&Status::FailBadInput).unwrap(),
            "\"FAIL_BAD_INPUT\""
        );
        assert!("FAIL_EQUIV".parse::<Status>().is_err());
    }

    #[test]
    fn read_write_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let r = sample_ok();
        r.write(&path).unwrap();
        assert_eq!(RunRecord::read(&path).unwrap(), r);
        let err = RunRecord::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
    }

    #[test]
    fn extra_keys_from_other_engines_are_accepted() {
        let mut v = serde_json::to_value(sample_ok()).unwrap();
        v["vendor_extra"] = serde_json::json!({"anything": 1});
        v["timings"]["graph_capture_s"] = serde_json::json!(0.1);
        let r = RunRecord::from_json_str(&p(), &v.to_string()).unwrap();
        assert_eq!(r, sample_ok());
    }
}
