//! JSON Schema validation of run.json and sweep.json. The bundled schemas
//! (`engine/schema/*.schema.json`) are the source of truth; this is a small interpreter of the
//! draft 2020-12 keywords they use, so no heavy validator crate is linked.
//!
//! Supported: `type`, `enum`, `const`, `minimum`, `maximum`, `minLength`, `minItems`,
//! `maxItems`, `required`, `properties`, `additionalProperties`, `prefixItems`, `items`, `allOf`,
//! `if`/`then`/`else`, `$ref` (to a JSON pointer inside the same document, e.g. `#/$defs/x`),
//! boolean schemas, and annotations (ignored; a `then`/`else` schema's `description` is appended
//! to its problems). A schema using any other keyword is refused when loaded, rather than having
//! that keyword silently ignored. One deliberate deviation: `integer` means a number written
//! without fraction or exponent (as serde reads integers), so `1.0` is not an integer.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Map, Number, Value};

use crate::trace::{TraceError, SCHEMA_VERSION};

/// One way a document breaks its schema: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// RFC 6901 pointer into the document; empty for the document itself.
    pub pointer: String,
    pub fault: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.fault)
    }
}

/// A loaded JSON Schema.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Value,
}

const APPLICATORS_ONE: &[&str] = &["additionalProperties", "items", "if", "then", "else"];
const APPLICATORS_MAP: &[&str] = &["properties", "$defs"];
const APPLICATORS_LIST: &[&str] = &["prefixItems", "allOf"];
const ASSERTIONS: &[&str] = &[
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "minItems",
    "maxItems",
    "required",
    "$ref",
];
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "format",
    "deprecated",
];
const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "string", "integer",
];
// Only reachable through a `$ref` cycle that consumes no data; none of ours has one.
const MAX_DEPTH: usize = 128;

impl Schema {
    /// Loads a schema, refusing keywords this interpreter does not implement and `$ref`s that
    /// do not resolve.
    pub fn parse(text: &str) -> Result<Schema, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let schema = Schema { root };
        schema.check_schema(&schema.root, "#")?;
        Ok(schema)
    }

    /// The schema document.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Every problem of `doc` (empty when valid).
    pub fn validate(&self, doc: &Value) -> Vec<SchemaProblem> {
        let mut out = Vec::new();
        let mut ptr = String::new();
        self.eval(&self.root, doc, &mut ptr, &mut out, 0);
        out
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    fn check_schema(&self, s: &Value, at: &str) -> Result<(), String> {
        let obj = match s {
            Value::Bool(_) => return Ok(()),
            Value::Object(o) => o,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        for (k, v) in obj {
            let here = format!("{at}/{k}");
            if APPLICATORS_ONE.contains(&k.as_str()) {
                self.check_schema(v, &here)?;
            } else if APPLICATORS_MAP.contains(&k.as_str()) {
                let map = v.as_object().ok_or(format!("{here}: must be an object"))?;
                for (name, sub) in map {
                    self.check_schema(sub, &format!("{here}/{name}"))?;
                }
            } else if APPLICATORS_LIST.contains(&k.as_str()) {
                let list = v.as_array().ok_or(format!("{here}: must be an array"))?;
                for (i, sub) in list.iter().enumerate() {
                    self.check_schema(sub, &format!("{here}/{i}"))?;
                }
            } else if k == "$ref" {
                let r = v.as_str().ok_or(format!("{here}: must be a string"))?;
                if self.resolve(r).is_none() {
                    return Err(format!("{here}: `{r}` does not resolve in this document"));
                }
            } else if k == "type" {
                let names: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                for n in names {
                    if !n.as_str().is_some_and(|n| TYPES.contains(&n)) {
                        return Err(format!("{here}: unknown type {n}"));
                    }
                }
            } else if k == "required" {
                let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
                if !ok {
                    return Err(format!("{here}: must be an array of strings"));
                }
            } else if ["minimum", "maximum"].contains(&k.as_str()) {
                if !v.is_number() {
                    return Err(format!("{here}: must be a number"));
                }
            } else if ["minLength", "minItems", "maxItems"].contains(&k.as_str()) {
                if !v.is_u64() {
                    return Err(format!("{here}: must be a non-negative integer"));
                }
            } else if k == "enum" {
                if !v.is_array() {
                    return Err(format!("{here}: must be an array"));
                }
            } else if !ASSERTIONS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                return Err(format!(
                    "{here}: keyword `{k}` is not supported by this validator"
                ));
            }
        }
        Ok(())
    }

    fn eval(
        &self,
        s: &Value,
        v: &Value,
        ptr: &mut String,
        out: &mut Vec<SchemaProblem>,
        depth: usize,
    ) {
        let push = |out: &mut Vec<SchemaProblem>, ptr: &str, fault: String| {
            out.push(SchemaProblem {
                pointer: ptr.to_string(),
                fault,
            })
        };
        let obj = match s {
            Value::Bool(true) => return,
            Value::Bool(false) => return push(out, ptr, "not allowed here".into()),
            Value::Object(o) => o,
            // Refused by check_schema; unreachable for loaded schemas.
            _ => return,
        };
        if depth > MAX_DEPTH {
            return push(out, ptr, "schema recursion too deep".into());
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            if let Some(target) = self.resolve(r) {
                self.eval(target, v, ptr, out, depth + 1);
            }
        }
        if let Some(t) = obj.get("type") {
            let names: Vec<&str> = match t {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                one => one.as_str().into_iter().collect(),
            };
            if !names.iter().any(|n| has_type(v, n)) {
                // Further checks of a value of the wrong type would only add noise.
                return push(
                    out,
                    ptr,
                    format!("expected {}, found {}", names.join(" or "), describe(v)),
                );
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            if !options.iter().any(|o| json_eq(o, v)) {
                let list: Vec<String> = options.iter().map(Value::to_string).collect();
                push(
                    out,
                    ptr,
                    format!("{} is not one of {}", describe(v), list.join(", ")),
                );
            }
        }
        if let Some(c) = obj.get("const") {
            if !json_eq(c, v) {
                push(out, ptr, format!("expected {c}, found {}", describe(v)));
            }
        }
        if let Value::Number(n) = v {
            if let Some(Value::Number(min)) = obj.get("minimum") {
                if num_cmp(n, min) == Some(Ordering::Less) {
                    push(out, ptr, format!("{n} is less than the minimum {min}"));
                }
            }
            if let Some(Value::Number(max)) = obj.get("maximum") {
                if num_cmp(n, max) == Some(Ordering::Greater) {
                    push(out, ptr, format!("{n} is more than the maximum {max}"));
                }
            }
        }
        if let (Value::String(text), Some(min)) = (v, obj.get("minLength").and_then(Value::as_u64))
        {
            if (text.chars().count() as u64) < min {
                push(out, ptr, format!("shorter than {min} character(s)"));
            }
        }
        if let Value::Array(items) = v {
            self.eval_array(obj, items, ptr, out, depth);
        }
        if let Value::Object(map) = v {
            self.eval_object(obj, map, ptr, out, depth);
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for sub in all {
                self.eval(sub, v, ptr, out, depth + 1);
            }
        }
        if let Some(cond) = obj.get("if") {
            let mut scratch = Vec::new();
            self.eval(cond, v, ptr, &mut scratch, depth + 1);
            let branch = obj.get(if scratch.is_empty() { "then" } else { "else" });
            if let Some(branch) = branch {
                let start = out.len();
                self.eval(branch, v, ptr, out, depth + 1);
                if let Some(why) = branch.get("description").and_then(Value::as_str) {
                    for p in &mut out[start..] {
                        p.fault = format!("{} ({why})", p.fault);
                    }
                }
            }
        }
    }

    fn eval_array(
        &self,
        obj: &Map<String, Value>,
        items: &[Value],
        ptr: &mut String,
        out: &mut Vec<SchemaProblem>,
        depth: usize,
    ) {
        let n = items.len() as u64;
        if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
            if n < min {
                out.push(SchemaProblem {
                    pointer: ptr.clone(),
                    fault: format!("has {n} item(s), at least {min} required"),
                });
            }
        }
        if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                out.push(SchemaProblem {
                    pointer: ptr.clone(),
                    fault: format!("has {n} item(s), at most {max} allowed"),
                });
            }
        }
        let prefix = match obj.get("prefixItems") {
            Some(Value::Array(p)) => p.as_slice(),
            _ => &[],
        };
        let rest = obj.get("items");
        for (i, item) in items.iter().enumerate() {
            let sub = match prefix.get(i) {
                Some(s) => s,
                None => match rest {
                    Some(s) => s,
                    None => continue,
                },
            };
            let len = ptr.len();
            ptr.push('/');
            ptr.push_str(&i.to_string());
            if sub == &Value::Bool(false) {
                out.push(SchemaProblem {
                    pointer: ptr.clone(),
                    fault: format!("unexpected item (at most {} allowed)", prefix.len()),
                });
            } else {
                self.eval(sub, item, ptr, out, depth + 1);
            }
            ptr.truncate(len);
        }
    }

    fn eval_object(
        &self,
        obj: &Map<String, Value>,
        map: &Map<String, Value>,
        ptr: &mut String,
        out: &mut Vec<SchemaProblem>,
        depth: usize,
    ) {
        let empty = Map::new();
        let props = obj
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if let Some(Value::Array(required)) = obj.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    out.push(SchemaProblem {
                        pointer: child(ptr, name),
                        fault: "missing required field".into(),
                    });
                }
            }
        }
        let additional = obj.get("additionalProperties");
        for (name, value) in map {
            let sub = match props.get(name) {
                Some(s) => s,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = props.keys().map(String::as_str).collect();
                        out.push(SchemaProblem {
                            pointer: child(ptr, name),
                            fault: format!("unknown field (allowed here: {})", known.join(", ")),
                        });
                        continue;
                    }
                    Some(s) => s,
                    None => continue,
                },
            };
            let len = ptr.len();
            *ptr = child(ptr, name);
            self.eval(sub, value, ptr, out, depth + 1);
            ptr.truncate(len);
        }
    }
}

fn child(ptr: &str, name: &str) -> String {
    format!("{ptr}/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let ellipsis = if short.len() < s.len() { "…" } else { "" };
            format!("string {short:?}{ellipsis}")
        }
        Value::Array(a) => format!("array of {} item(s)", a.len()),
        Value::Object(_) => "object".into(),
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

// Exact for integers (a u64 seed near 2^64 must not round), f64 otherwise.
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

// JSON Schema equality: numbers compare by value (1 == 1.0), the rest structurally.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// The run.json schema (`engine/schema/run.schema.json`).
pub fn run_schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        // Bundled at build time and loaded by a unit test, so this cannot fail at run time.
        Schema::parse(include_str!("../../schema/run.schema.json"))
            .expect("bundled run.schema.json is valid")
    })
}

/// The sweep.json schema (`engine/schema/sweep.schema.json`).
pub fn sweep_schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        Schema::parse(include_str!("../../schema/sweep.schema.json"))
            .expect("bundled sweep.schema.json is valid")
    })
}

/// Parses JSON text, refuses a `schema_version` other than ours with its own error (a newer
/// document need not match our schema), then validates against `schema`.
pub(crate) fn parse_validated(
    path: &Path,
    text: &str,
    schema: &Schema,
) -> Result<Value, TraceError> {
    let value: Value = serde_json::from_str(text).map_err(|e| TraceError::json(path, e))?;
    if let Some(Value::Number(n)) = value.get("schema_version") {
        if as_int(n).is_some() && as_int(n) != Some(i128::from(SCHEMA_VERSION)) {
            return Err(TraceError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: n.clone(),
                supported: SCHEMA_VERSION,
            });
        }
    }
    let problems = schema.validate(&value);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(TraceError::Schema {
            path: path.to_path_buf(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::config::{AttnImpl, Dtype, Numerics};
    use crate::trace::run::tests::sample_ok;
    use crate::trace::run::Status;
    use serde_json::json;

    fn problems(v: &Value) -> Vec<String> {
        run_schema()
            .validate(v)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn valid() -> Value {
        serde_json::to_value(sample_ok()).unwrap()
    }

    #[test]
    fn bundled_schemas_load() {
        run_schema();
        sweep_schema();
    }

    #[test]
    fn valid_doc_has_no_problems() {
        assert_eq!(problems(&valid()), Vec::<String>::new());
    }

    #[test]
    fn missing_fields_are_all_listed() {
        let mut v = valid();
        v["config"].as_object_mut().unwrap().remove("batch");
        v["config"].as_object_mut().unwrap().remove("seed");
        v["timings"].as_object_mut().unwrap().remove("wall_s");
        v.as_object_mut().unwrap().remove("mode");
        let p = problems(&v);
        assert_eq!(p.len(), 4, "{p:#?}");
        for want in [
            "/config/batch: missing required field",
            "/config/seed: missing required field",
            "/timings/wall_s: missing required field",
            "/mode: missing required field",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} not in {p:#?}");
        }
    }

    #[test]
    fn wrong_types() {
        let mut v = valid();
        v["config"]["batch"] = json!("8");
        v["config"]["ctx"] = json!(4.0);
        v["config"]["kv_aligned"] = json!(1);
        v["tokens"]["prompt"][1][2] = json!(-1);
        v["tokens"]["generated"][0][0] = json!(4294967296u64);
        v["memory"]["samples"][0] = json!([0.0, 1.0, 2.0]);
        v["memory"]["samples"][1] = json!([0.0]);
        v["argv"] = json!("tracecheck-engine capture");
        let p = problems(&v);
        for want in [
            "/config/batch: expected integer, found string \"8\"",
            "/config/ctx: expected integer, found number 4.0",
            "/config/kv_aligned: expected boolean, found number 1",
            "/tokens/prompt/1/2: -1 is less than the minimum 0",
            "/tokens/generated/0/0: 4294967296 is more than the maximum 4294967295",
            "/memory/samples/0/2: unexpected item (at most 2 allowed)",
            "/memory/samples/1: has 1 item(s), at least 2 required",
            "/argv: expected array, found string \"tracecheck-engine capture\"",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} not in {p:#?}");
        }
        assert_eq!(p.len(), 8, "{p:#?}");
    }

    #[test]
    fn wrong_enums_and_unknown_config_keys() {
        let mut v = valid();
        v["status"] = json!("PASS");
        v["config"]["dtype"] = json!("f16");
        v["config"]["backend"] = json!("cuda");
        v["vendor_extra"] = json!(1); // allowed at top level
        let p = problems(&v);
        assert!(p
            .iter()
            .any(|x| x.starts_with("/status: string \"PASS\" is not one of \"OK\"")));
        assert!(p
            .iter()
            .any(|x| x == "/config/dtype: string \"f16\" is not one of \"f32\", \"bf16\""));
        assert!(p
            .iter()
            .any(|x| x
                .starts_with("/config/backend: unknown field (allowed here: attn_impl, batch,")));
        assert_eq!(p.len(), 3, "{p:#?}");
    }

    #[test]
    fn status_only_and_the_ok_requirement() {
        let mut v = valid();
        for k in ["engine", "model", "tokens", "timings", "memory"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let p = problems(&v);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p.contains(&"/engine: missing required field (status OK requires it)".into()));
        v["status"] = json!("FAIL_TIMEOUT");
        v["error"] = json!("prefill exceeded 600 s");
        assert_eq!(problems(&v), Vec::<String>::new());
    }

    #[test]
    fn schema_version() {
        let path = Path::new("c/run.json");
        let mut v = valid();
        v["schema_version"] = json!(2);
        let err = parse_validated(path, &v.to_string(), run_schema()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c/run.json: schema_version 2 is not supported (this build reads 1)"
        );
        v["schema_version"] = json!("1");
        let err = parse_validated(path, &v.to_string(), run_schema()).unwrap_err();
        assert!(matches!(err, TraceError::Schema { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("/schema_version: expected integer"));
        v.as_object_mut().unwrap().remove("schema_version");
        let err = parse_validated(path, &v.to_string(), run_schema()).unwrap_err();
        assert!(err
            .to_string()
            .contains("/schema_version: missing required field"));
    }

    #[test]
    fn bad_json_and_non_object() {
        let path = Path::new("c/run.json");
        let err = parse_validated(path, "{\"schema_version\": 1,", run_schema()).unwrap_err();
        assert!(matches!(err, TraceError::Json { .. }));
        assert!(
            err.to_string().starts_with("c/run.json: invalid JSON"),
            "{err}"
        );
        let err = parse_validated(path, "[1]", run_schema()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c/run.json: /: expected object, found array of 1 item(s)"
        );
    }

    #[test]
    fn schema_lists_match_the_rust_enums() {
        let root = run_schema().root();
        let names = |ptr: &str| -> Vec<String> {
            root.pointer(ptr).unwrap()["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("/properties/status"), Status::NAMES);
        assert_eq!(names("/$defs/config/properties/dtype"), Dtype::NAMES);
        assert_eq!(names("/$defs/config/properties/numerics"), Numerics::NAMES);
        assert_eq!(names("/$defs/config/properties/attn_impl"), AttnImpl::NAMES);
    }

    #[test]
    fn sweep_and_run_schemas_share_config() {
        for def in ["config", "count", "positive"] {
            let p = format!("/$defs/{def}");
            assert_eq!(
                run_schema().root().pointer(&p),
                sweep_schema().root().pointer(&p),
                "{def}"
            );
        }
    }

    #[test]
    fn interpreter_refuses_unsupported_keywords_and_dangling_refs() {
        let err = Schema::parse(r#"{"type": "string", "pattern": "^a"}"#).unwrap_err();
        assert!(err.contains("`pattern` is not supported"), "{err}");
        let err =
            Schema::parse(r##"{"properties": {"a": {"$ref": "#/$defs/nope"}}}"##).unwrap_err();
        assert!(err.contains("does not resolve"), "{err}");
        let err = Schema::parse(r#"{"type": "float"}"#).unwrap_err();
        assert!(err.contains("unknown type"), "{err}");
    }

    #[test]
    fn interpreter_semantics() {
        let s = Schema::parse(
            r#"{
                "allOf": [{"required": ["a"]}],
                "properties": {"a": {"const": 1}, "b/c": {"type": ["string", "null"]}},
                "if": {"properties": {"a": {"const": 1}}},
                "then": {"required": ["b/c"]},
                "else": {"required": ["z"], "description": "because a is not 1"}
            }"#,
        )
        .unwrap();
        let p =
            |v: Value| -> Vec<String> { s.validate(&v).iter().map(ToString::to_string).collect() };
        assert_eq!(p(json!({"a": 1.0, "b/c": null})), Vec::<String>::new());
        assert_eq!(p(json!({"a": 1})), ["/b~1c: missing required field"]);
        assert_eq!(
            p(json!({"a": 2, "b/c": 3})),
            [
                "/a: expected 1, found number 2",
                "/b~1c: expected string or null, found number 3",
                "/z: missing required field (because a is not 1)",
            ]
        );
        assert_eq!(
            p(json!({})),
            [
                "/a: missing required field",
                "/b~1c: missing required field"
            ]
        );
    }
}
