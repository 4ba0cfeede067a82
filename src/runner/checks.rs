//! Input checks that read files, run before any cell starts so that a bad input is one clear
//! error (exit 2) instead of a sweep of failed cells: the `--prompt-ids` file, the model and the
//! output directory.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracecheck_engine::fetch::NAMED_MODELS;
use tracecheck_engine::model::DummyShape;
use tracecheck_engine::trace::{SweepRecord, SWEEP_JSON};

use super::error::RunError;
use super::plan::SweepPlan;

/// What a `--prompt-ids` file fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptIdsInfo {
    pub path: PathBuf,
    /// Ids per prompt: the context length.
    pub len: usize,
    /// Prompts in a list-of-lists file; `None` for a single list (every prompt index uses it).
    pub count: Option<usize>,
}

/// Reads a `--prompt-ids` file: a JSON list of non-negative integers, or a list of equally long
/// non-empty lists of them. (The engine checks the ids against the model's vocabulary.)
pub fn read_prompt_ids(path: &Path) -> Result<PromptIdsInfo, RunError> {
    let bad = |fault: String| RunError::BadPromptIds {
        path: path.to_path_buf(),
        fault,
    };
    let text = fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let outer = value
        .as_array()
        .ok_or_else(|| bad("expected a list of ids or a list of lists of ids".into()))?;
    if outer.is_empty() {
        return Err(bad("the list is empty".into()));
    }
    let nested = outer[0].is_array();
    let lists: Vec<&Vec<Value>> = if nested {
        outer
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_array()
                    .ok_or_else(|| bad(format!("item {i} is not a list (lists and ids are mixed)")))
            })
            .collect::<Result<_, _>>()?
    } else {
        vec![outer]
    };
    let len = lists[0].len();
    for (prompt, list) in lists.iter().enumerate() {
        let at = |pos: usize| {
            if nested {
                format!("prompt {prompt}, position {pos}")
            } else {
                format!("position {pos}")
            }
        };
        if list.is_empty() {
            return Err(bad(format!("prompt {prompt} is empty")));
        }
        if list.len() != len {
            return Err(bad(format!(
                "prompt {prompt} has {} ids, prompt 0 has {len} (all must be equally long)",
                list.len()
            )));
        }
        if let Some((pos, v)) = list
            .iter()
            .enumerate()
            .find(|(_, v)| v.as_u64().is_none_or(|id| id > u64::from(u32::MAX)))
        {
            return Err(bad(format!(
                "{}: {v} is not a token id (a non-negative integer)",
                at(pos)
            )));
        }
    }
    Ok(PromptIdsInfo {
        path: path.to_path_buf(),
        len,
        count: nested.then_some(lists.len()),
    })
}

/// How the engine will find the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Dummy,
    /// Fetched into the engine's cache ([`NAMED_MODELS`]).
    Named,
    Gguf,
}

/// Checks `--model`: a known `dummy:` shape, a known model name, or a file that starts with the
/// GGUF magic.
pub fn check_model(model: &str) -> Result<ModelKind, RunError> {
    let bad = |fault: String| RunError::BadModel {
        model: model.to_string(),
        fault,
    };
    if let Some(shape) = model.strip_prefix("dummy:") {
        return match shape.parse::<DummyShape>() {
            Ok(_) => Ok(ModelKind::Dummy),
            Err(e) => Err(bad(e.to_string())),
        };
    }
    if NAMED_MODELS.contains(&model) {
        return Ok(ModelKind::Named);
    }
    let path = Path::new(model);
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        // A bare word is more likely a misspelt model name than a missing file.
        Err(_) if !model.contains(['/', '\\']) && path.extension().is_none() => {
            return Err(bad(format!(
                "no such file, and not a known model (known: {}, dummy:{})",
                NAMED_MODELS.join(", "),
                DummyShape::NAMES.join("|")
            )))
        }
        Err(source) => {
            return Err(RunError::ModelUnreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if meta.is_dir() {
        return Err(bad("is a directory, expected a .gguf file".into()));
    }
    let mut magic = [0u8; 4];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if &magic == b"GGUF" => Ok(ModelKind::Gguf),
        Ok(()) => Err(bad(format!(
            "not a GGUF file (starts with {:02x} {:02x} {:02x} {:02x}, expected the magic `GGUF`)",
            magic[0], magic[1], magic[2], magic[3]
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(bad("not a GGUF file (shorter than its 4-byte magic)".into()))
        }
        Err(source) => Err(RunError::ModelUnreadable {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates the output directory, and refuses one that holds a sweep of another mode or model
/// (its finished cells would be kept and mixed into this one) unless `--force`.
pub fn prepare_out_dir(plan: &SweepPlan) -> Result<(), RunError> {
    let out = &plan.out;
    let fault = |fault: String| RunError::OutDir {
        path: out.clone(),
        fault,
    };
    if out.exists() && !out.is_dir() {
        return Err(fault("exists and is not a directory".into()));
    }
    fs::create_dir_all(out).map_err(|e| fault(format!("cannot create it: {e}")))?;
    if plan.force {
        return Ok(());
    }
    // An unreadable sweep.json is simply replaced; only a readable one can disagree.
    if let Ok(old) = SweepRecord::read(&out.join(SWEEP_JSON)) {
        if old.mode != plan.mode || old.model != plan.model {
            return Err(RunError::OtherSweep {
                path: out.clone(),
                found_mode: old.mode,
                found_model: old.model,
                mode: plan.mode.clone(),
                model: plan.model.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(dir: &Path, text: &str) -> Result<PromptIdsInfo, String> {
        let p = dir.join("ids.json");
        fs::write(&p, text).unwrap();
        read_prompt_ids(&p).map_err(|e| {
            let s = e.to_string();
            assert!(
                s.starts_with(&format!("--prompt-ids {}: ", p.display())),
                "{s}"
            );
            s[format!("--prompt-ids {}: ", p.display()).len()..].to_string()
        })
    }

    #[test]
    fn prompt_ids_files() {
        let d = tempfile::tempdir().unwrap();
        let one = ids(d.path(), "[1, 2, 3]").unwrap();
        assert_eq!((one.len, one.count), (3, None));
        let two = ids(d.path(), "[[1, 2], [3, 4], [5, 6]]").unwrap();
        assert_eq!((two.len, two.count), (2, Some(3)));
        for (text, fault) in [
            ("{}", "expected a list of ids or a list of lists of ids"),
            ("[]", "the list is empty"),
            (
                "[1, -2]",
                "position 1: -2 is not a token id (a non-negative integer)",
            ),
            ("[1, 2.5]", "position 1: 2.5 is not a token id"),
            (
                "[[1], [2, 3]]",
                "prompt 1 has 2 ids, prompt 0 has 1 (all must be equally long)",
            ),
            ("[[1], 2]", "item 1 is not a list (lists and ids are mixed)"),
            ("[[]]", "prompt 0 is empty"),
            (
                "[[1], [\"a\"]]",
                "prompt 1, position 0: \"a\" is not a token id",
            ),
            ("[1,", "invalid JSON"),
        ] {
            let e = ids(d.path(), text).unwrap_err();
            assert!(e.starts_with(fault), "{text}: {e}");
        }
        let e = read_prompt_ids(&d.path().join("absent.json")).unwrap_err();
        assert!(matches!(e, RunError::BadPromptIds { .. }), "{e}");
    }

    #[test]
    fn models() {
        assert_eq!(check_model("dummy:tiny").unwrap(), ModelKind::Dummy);
        assert_eq!(check_model("smollm2-135m").unwrap(), ModelKind::Named);
        assert_eq!(
            check_model("dummy:huge").unwrap_err().to_string(),
            "--model dummy:huge: unknown dummy shape `huge` (known: tiny, smollm2-135m, llama3-8b)"
        );
        assert!(check_model("smollm3")
            .unwrap_err()
            .to_string()
            .starts_with("--model smollm3: no such file, and not a known model"));
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("m.gguf");
        assert!(matches!(
            check_model(missing.to_str().unwrap()),
            Err(RunError::ModelUnreadable { .. })
        ));
        fs::write(&missing, b"GGUF\x03\0\0\0").unwrap();
        assert_eq!(
            check_model(missing.to_str().unwrap()).unwrap(),
            ModelKind::Gguf
        );
        fs::write(&missing, b"PK\x03\x04rest").unwrap();
        assert!(check_model(missing.to_str().unwrap())
            .unwrap_err()
            .to_string()
            .ends_with("not a GGUF file (starts with 50 4b 03 04, expected the magic `GGUF`)"));
        fs::write(&missing, b"GG").unwrap();
        assert!(check_model(missing.to_str().unwrap())
            .unwrap_err()
            .to_string()
            .contains("shorter than its 4-byte magic"));
        assert!(check_model(d.path().to_str().unwrap())
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }
}
