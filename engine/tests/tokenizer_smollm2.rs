//! The tokenizer against reference ids for SmolLM2-135M's GGUF vocabulary.
//!
//! The fixture (tests/fixtures/tokenizer_smollm2.json) comes from scripts/tokenizer_reference.py:
//! Hugging Face transformers' GGUF tokenizer conversion, an implementation independent of ours.
//! The model file is not bundled: set TRACECHECK_SMOLLM2_GGUF, or leave it under /tmp/smol; the
//! test is skipped (with a note) when no file is found.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracecheck_engine::prompts::CORPUS;
use tracecheck_engine::tokenizer::{GgufVocab, Tokenizer};

#[derive(serde::Deserialize)]
struct Fixture {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    corpus_sha256: String,
    corpus_ids_len: usize,
    corpus_ids_sha256: String,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_smollm2.json");
    let text = std::fs::read_to_string(&path).expect("fixture present");
    serde_json::from_str(&text).expect("fixture parses")
}

fn model_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRACECHECK_SMOLLM2_GGUF") {
        return Some(PathBuf::from(p));
    }
    fn find(dir: &Path, depth: usize) -> Option<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() && depth > 0 {
                if let Some(found) = find(&p, depth - 1) {
                    return Some(found);
                }
            } else if p.extension().is_some_and(|x| x == "gguf")
                && p.to_string_lossy().to_lowercase().contains("smollm2")
            {
                return Some(p);
            }
        }
        None
    }
    find(Path::new("/tmp/smol"), 3)
}

/// The SmolLM2 vocabulary from the GGUF file, or `None` (test skipped) when there is no file.
fn smollm2_vocab() -> Option<GgufVocab> {
    let Some(path) = model_path() else {
        eprintln!("skipped: no SmolLM2 GGUF under /tmp/smol (or set TRACECHECK_SMOLLM2_GGUF)");
        return None;
    };
    if !path.is_file() {
        eprintln!("skipped: no SmolLM2 GGUF at {}", path.display());
        return None;
    }
    Some(mini_gguf::read_vocab(&path).expect("GGUF tokenizer metadata reads"))
}

/// A minimal GGUF metadata reader for this test only: the header and key/values, no tensors.
mod mini_gguf {
    use super::*;

    pub enum Value {
        Int(i128),
        Str(String),
        Strs(Vec<String>),
        Ints(Vec<i128>),
        Other,
    }

    struct R<T: Read>(T);

    impl<T: Read> R<T> {
        fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
            let mut b = [0u8; N];
            self.0.read_exact(&mut b)?;
            Ok(b)
        }
        fn u32(&mut self) -> std::io::Result<u32> {
            Ok(u32::from_le_bytes(self.bytes()?))
        }
        fn u64(&mut self) -> std::io::Result<u64> {
            Ok(u64::from_le_bytes(self.bytes()?))
        }
        fn string(&mut self) -> std::io::Result<String> {
            let n = self.u64()? as usize;
            let mut b = vec![0u8; n];
            self.0.read_exact(&mut b)?;
            Ok(String::from_utf8_lossy(&b).into_owned())
        }
        /// A scalar of GGUF type `t` as an integer (None for floats, strings, arrays).
        fn scalar(&mut self, t: u32) -> std::io::Result<Option<i128>> {
            Ok(match t {
                0 => Some(self.bytes::<1>()?[0] as i128),
                1 => Some(self.bytes::<1>()?[0] as i8 as i128),
                2 => Some(u16::from_le_bytes(self.bytes()?) as i128),
                3 => Some(i16::from_le_bytes(self.bytes()?) as i128),
                4 => Some(self.u32()? as i128),
                5 => Some(self.u32()? as i32 as i128),
                6 => {
                    self.bytes::<4>()?;
                    None
                }
                7 => Some(self.bytes::<1>()?[0] as i128),
                10 => Some(self.u64()? as i128),
                11 => Some(self.u64()? as i64 as i128),
                12 => {
                    self.bytes::<8>()?;
                    None
                }
                _ => panic!("GGUF value type {t} is not a scalar"),
            })
        }
        fn value(&mut self, t: u32) -> std::io::Result<Value> {
            Ok(match t {
                8 => Value::Str(self.string()?),
                9 => {
                    let et = self.u32()?;
                    let n = self.u64()? as usize;
                    if et == 8 {
                        let mut v = Vec::with_capacity(n);
                        for _ in 0..n {
                            v.push(self.string()?);
                        }
                        Value::Strs(v)
                    } else if et == 9 {
                        for _ in 0..n {
                            let inner = self.u32()?;
                            self.value(inner)?;
                        }
                        Value::Other
                    } else {
                        let mut v = Vec::with_capacity(n);
                        for _ in 0..n {
                            v.push(self.scalar(et)?.unwrap_or(0));
                        }
                        Value::Ints(v)
                    }
                }
                _ => match self.scalar(t)? {
                    Some(i) => Value::Int(i),
                    None => Value::Other,
                },
            })
        }
    }

    pub fn read_vocab(path: &Path) -> std::io::Result<GgufVocab> {
        let mut r = R(BufReader::new(File::open(path)?));
        assert_eq!(
            &r.bytes::<4>()?,
            b"GGUF",
            "{}: not a GGUF file",
            path.display()
        );
        let version = r.u32()?;
        assert!((2..=3).contains(&version), "GGUF version {version}");
        let _tensors = r.u64()?;
        let kvs = r.u64()?;
        let mut v = GgufVocab {
            source: path.display().to_string(),
            ..Default::default()
        };
        for _ in 0..kvs {
            let key = r.string()?;
            let t = r.u32()?;
            let value = r.value(t)?;
            match (key.as_str(), value) {
                ("tokenizer.ggml.model", Value::Str(s)) => v.model = s,
                ("tokenizer.ggml.pre", Value::Str(s)) => v.pre = Some(s),
                ("tokenizer.ggml.tokens", Value::Strs(s)) => v.tokens = s,
                ("tokenizer.ggml.merges", Value::Strs(s)) => v.merges = s,
                ("tokenizer.ggml.token_type", Value::Ints(i)) => {
                    v.token_types = Some(i.into_iter().map(|x| x as i32).collect())
                }
                ("tokenizer.ggml.bos_token_id", Value::Int(i)) => v.bos = Some(i as u32),
                ("tokenizer.ggml.eos_token_id", Value::Int(i)) => v.eos = Some(i as u32),
                _ => {}
            }
        }
        Ok(v)
    }
}

#[test]
fn smollm2_ids_match_reference() {
    let Some(vocab) = smollm2_vocab() else {
        return;
    };
    assert_eq!(vocab.model, "gpt2");
    assert_eq!(vocab.pre.as_deref(), Some("smollm"));
    let tok = Tokenizer::from_vocab(&vocab).expect("SmolLM2 tokenizer builds");
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));

    let fx = fixture();
    assert_eq!(fx.texts.len(), fx.ids.len());
    for (text, want) in fx.texts.iter().zip(&fx.ids) {
        let got = tok.encode(text).expect("encodes");
        assert_eq!(&got, want, "ids of {text:?}");
        assert_eq!(tok.decode(&got), *text, "round trip of {text:?}");
    }
    assert_eq!(tok.token_text(2), "<|im_end|>");
    assert_eq!(tok.token_text(fx.ids[0][0]), "Hello");

    // The whole bundled corpus, against the digest of the reference ids.
    assert_eq!(
        format!("{:x}", Sha256::digest(CORPUS.as_bytes())),
        fx.corpus_sha256,
        "corpus.txt changed: rerun scripts/tokenizer_reference.py"
    );
    let ids = tok.encode(CORPUS).expect("corpus encodes");
    assert_eq!(ids.len(), fx.corpus_ids_len);
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        fx.corpus_ids_sha256
    );
}
