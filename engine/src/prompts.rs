//! Prompt sources: the token ids of prompt `i` with `P` tokens.
//!
//! Sequence `b` of a cell uses prompt `i = prompt_offset + b`, and prompt `i` depends only on
//! `(source, i, P)` — never on the batch size — so every sequence of a batch-N cell has a
//! bit-identical batch-1 twin.
//!
//! - [`PromptSource::Text`]: the bundled public-domain corpus (`assets/corpus.txt`), tokenized
//!   once; prompt `i` is `P` tokens of that stream starting at `(i × STRIDE) mod N`, wrapping
//!   around to the start when the stream runs out.
//! - [`PromptSource::Ids`]: `--prompt-ids FILE`, a JSON list of ids (every prompt) or a list of
//!   lists (prompt `i` = list `i`); ctx is the lists' length.
//! - [`PromptSource::Counter`]: `dummy:` models; id at position `p` of prompt `i` is
//!   `counter_hash(seed, i, p)` mapped to `[0, vocab)`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::rng::counter_hash;
use crate::tokenizer::{Tokenizer, TokenizerError};

/// The bundled corpus (public-domain English prose; sources in `assets/CORPUS_SOURCES.md`).
pub const CORPUS: &str = include_str!("../assets/corpus.txt");

/// Tokens between the starts of consecutive text prompts. Prime, so that prompt starts cycle
/// through every offset of the stream before repeating (unless N is a multiple of it).
pub const STRIDE: usize = 257;

/// How `prompt i` was asked for wrongly, or why a source cannot be built.
#[derive(Debug, Error)]
pub enum PromptError {
    #[error("prompt length must be at least 1 token (got 0)")]
    ZeroLength,
    #[error("bundled corpus: {0}")]
    Corpus(#[from] TokenizerError),
    #[error("bundled corpus: tokenizes to no tokens")]
    EmptyCorpus,
    #[error("{}: cannot read the prompt ids: {err}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{}: not JSON: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    #[error("{}: {reason}; expected a list of token ids or a list of lists of token ids", path.display())]
    Shape { path: PathBuf, reason: String },
    #[error("{}: prompt {prompt}, position {position}: `{value}` is not a token id (a whole number ≥ 0)", path.display())]
    NotAnId {
        path: PathBuf,
        prompt: usize,
        position: usize,
        value: String,
    },
    #[error("{}: prompt {prompt} has {len} ids but prompt 0 has {expected}; all prompts need one length", path.display())]
    UnequalLengths {
        path: PathBuf,
        prompt: usize,
        len: usize,
        expected: usize,
    },
    #[error("{origin}: prompt {prompt}, position {position}: id {id} is outside the vocabulary of {vocab} tokens")]
    IdOutOfRange {
        origin: String,
        prompt: usize,
        position: usize,
        id: u64,
        vocab: usize,
    },
    #[error("{}: has {count} prompts, so there is no prompt {index} (indices start at 0)", path.display())]
    NoSuchPrompt {
        path: PathBuf,
        index: usize,
        count: usize,
    },
    #[error("{}: prompts have {len} ids, fewer than the {requested} asked for", path.display())]
    TooShort {
        path: PathBuf,
        len: usize,
        requested: usize,
    },
    #[error("counter prompts need a vocabulary of at least 1 token")]
    EmptyVocab,
}

/// The ids of a `--prompt-ids` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdsPrompts {
    /// One list, used for every prompt index.
    Same(Vec<u32>),
    /// One list per prompt index, all of one length.
    PerPrompt(Vec<Vec<u32>>),
}

/// Where prompt ids come from. Cheap to clone (the token stream is shared).
#[derive(Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// The bundled corpus, tokenized once.
    Text { stream: Arc<[u32]> },
    /// `--prompt-ids FILE`.
    Ids { path: PathBuf, prompts: IdsPrompts },
    /// Counter-RNG ids for `dummy:` models.
    Counter { seed: u64, vocab: usize },
}

impl fmt::Debug for PromptSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stream is long: show its length only.
        match self {
            PromptSource::Text { stream } => f
                .debug_struct("Text")
                .field("tokens", &stream.len())
                .finish(),
            PromptSource::Ids { path, prompts } => f
                .debug_struct("Ids")
                .field("path", path)
                .field("prompts", prompts)
                .finish(),
            PromptSource::Counter { seed, vocab } => f
                .debug_struct("Counter")
                .field("seed", seed)
                .field("vocab", vocab)
                .finish(),
        }
    }
}

impl PromptSource {
    /// The bundled corpus tokenized by `tok`.
    pub fn text(tok: &Tokenizer) -> Result<Self, PromptError> {
        Self::text_from(tok, CORPUS)
    }

    /// Any text tokenized by `tok` as the stream (tests, custom corpora).
    pub fn text_from(tok: &Tokenizer, text: &str) -> Result<Self, PromptError> {
        let ids = tok.encode(text)?;
        if ids.is_empty() {
            return Err(PromptError::EmptyCorpus);
        }
        Ok(PromptSource::Text { stream: ids.into() })
    }

    /// Counter-RNG prompts for a `dummy:` model of `vocab` tokens.
    pub fn counter(seed: u64, vocab: usize) -> Result<Self, PromptError> {
        if vocab == 0 {
            return Err(PromptError::EmptyVocab);
        }
        Ok(PromptSource::Counter { seed, vocab })
    }

    /// Reads `--prompt-ids FILE` and checks every id against the model's vocabulary.
    pub fn ids_file(path: &Path, vocab: usize) -> Result<Self, PromptError> {
        let text = std::fs::read_to_string(path).map_err(|err| PromptError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        Self::ids_json(path, &text, vocab)
    }

    /// Parses the JSON of a `--prompt-ids` file; `path` is only named in errors.
    pub fn ids_json(path: &Path, json: &str, vocab: usize) -> Result<Self, PromptError> {
        let p = || path.to_path_buf();
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| PromptError::Json {
                path: p(),
                reason: e.to_string(),
            })?;
        let shape = |reason: &str| PromptError::Shape {
            path: p(),
            reason: reason.to_string(),
        };
        let outer = value.as_array().ok_or_else(|| shape("not a list"))?;
        if outer.is_empty() {
            return Err(shape("the list is empty"));
        }
        let nested = outer[0].is_array();
        let lists: Vec<&Vec<serde_json::Value>> = if nested {
            outer
                .iter()
                .map(|v| v.as_array().ok_or_else(|| shape("lists and ids are mixed")))
                .collect::<Result<_, _>>()?
        } else {
            vec![outer]
        };
        let expected = lists[0].len();
        let mut prompts = Vec::with_capacity(lists.len());
        for (prompt, list) in lists.iter().enumerate() {
            if list.is_empty() {
                return Err(shape(&format!("prompt {prompt} is empty")));
            }
            if list.len() != expected {
                return Err(PromptError::UnequalLengths {
                    path: p(),
                    prompt,
                    len: list.len(),
                    expected,
                });
            }
            let mut ids = Vec::with_capacity(list.len());
            for (position, v) in list.iter().enumerate() {
                let id = v.as_u64().ok_or_else(|| PromptError::NotAnId {
                    path: p(),
                    prompt,
                    position,
                    value: v.to_string(),
                })?;
                if id >= vocab as u64 {
                    return Err(PromptError::IdOutOfRange {
                        origin: path.display().to_string(),
                        prompt,
                        position,
                        id,
                        vocab,
                    });
                }
                // id < vocab ≤ usize; a vocabulary beyond u32 is refused by the tokenizer.
                ids.push(u32::try_from(id).map_err(|_| PromptError::IdOutOfRange {
                    origin: path.display().to_string(),
                    prompt,
                    position,
                    id,
                    vocab,
                })?);
            }
            prompts.push(ids);
        }
        let prompts = if nested {
            IdsPrompts::PerPrompt(prompts)
        } else {
            IdsPrompts::Same(prompts.swap_remove(0))
        };
        Ok(PromptSource::Ids {
            path: path.to_path_buf(),
            prompts,
        })
    }

    /// The context length a `--prompt-ids` file fixes (its lists' length); `None` otherwise.
    pub fn ctx(&self) -> Option<usize> {
        match self {
            PromptSource::Ids { prompts, .. } => Some(match prompts {
                IdsPrompts::Same(ids) => ids.len(),
                IdsPrompts::PerPrompt(lists) => lists.first().map_or(0, Vec::len),
            }),
            _ => None,
        }
    }

    /// How many distinct prompt indices exist: `Some(n)` for a list-of-lists file, `None` when
    /// every index is valid. The runner checks `prompt_offset + batch ≤ n` before any cell.
    pub fn prompt_count(&self) -> Option<usize> {
        match self {
            PromptSource::Ids {
                prompts: IdsPrompts::PerPrompt(lists),
                ..
            } => Some(lists.len()),
            _ => None,
        }
    }

    /// A short description for run records: `text:corpus`, `ids:PATH`, `counter:seed=N`.
    pub fn label(&self) -> String {
        match self {
            PromptSource::Text { .. } => "text:corpus".to_string(),
            PromptSource::Ids { path, .. } => format!("ids:{}", path.display()),
            PromptSource::Counter { seed, .. } => format!("counter:seed={seed}"),
        }
    }

    /// The ids of prompt `i` with `p` tokens. For a `--prompt-ids` file, `p` may be at most the
    /// file's length (a shorter `p`, e.g. a ragged length, keeps the first `p` ids).
    pub fn prompt(&self, i: usize, p: usize) -> Result<Vec<u32>, PromptError> {
        if p == 0 {
            return Err(PromptError::ZeroLength);
        }
        match self {
            PromptSource::Text { stream } => {
                let n = stream.len();
                // The variant is public: an empty stream built by hand must not divide by zero.
                if n == 0 {
                    return Err(PromptError::EmptyCorpus);
                }
                // i × STRIDE may overflow usize for huge i: reduce modulo n first.
                let start = ((i % n) * (STRIDE % n)) % n;
                Ok(stream.iter().cycle().skip(start).take(p).copied().collect())
            }
            PromptSource::Ids { path, prompts } => {
                let ids = match prompts {
                    IdsPrompts::Same(ids) => ids,
                    IdsPrompts::PerPrompt(lists) => {
                        lists.get(i).ok_or_else(|| PromptError::NoSuchPrompt {
                            path: path.clone(),
                            index: i,
                            count: lists.len(),
                        })?
                    }
                };
                if p > ids.len() {
                    return Err(PromptError::TooShort {
                        path: path.clone(),
                        len: ids.len(),
                        requested: p,
                    });
                }
                Ok(ids[..p].to_vec())
            }
            PromptSource::Counter { vocab: 0, .. } => Err(PromptError::EmptyVocab),
            PromptSource::Counter { seed, vocab } => Ok((0..p)
                .map(|pos| counter_id(*seed, i, pos, *vocab))
                .collect()),
        }
    }
}

/// Id at position `pos` of counter prompt `i`: the high half of `counter_hash(seed, i, pos) ×
/// vocab` (uniform in `[0, vocab)`, bias below vocab / 2^64).
pub fn counter_id(seed: u64, i: usize, pos: usize, vocab: usize) -> u32 {
    let h = counter_hash(seed, i as u64, pos as u64);
    ((u128::from(h) * vocab as u128) >> 64) as u32
}

/// Prompt length of sequence `i` when `--kv-aligned false` makes prompts ragged.
///
/// Rule: prompt `i` keeps `P − ((i × 7) mod max(1, ⌊P/4⌋))` tokens (its first ones). Prompt 0
/// keeps all `P`; no prompt loses more than `max(1, ⌊P/4⌋) − 1` tokens, so every length is at
/// least 1 for P ≥ 1, and P < 8 is never shortened. Lengths depend only on (P, i), never on the
/// batch size. Example, P = 128 (modulus 32): prompts 0..6 keep 128, 121, 114, 107, 100, 125, 118.
pub fn ragged_len(p: usize, i: usize) -> usize {
    let m = (p / 4).max(1) as u128;
    let cut = (i as u128 * 7) % m;
    p - cut as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::tiny_vocab;

    fn tiny_text() -> PromptSource {
        let tok = Tokenizer::from_vocab(&tiny_vocab()).unwrap();
        PromptSource::text(&tok).unwrap()
    }

    #[test]
    fn corpus_is_large_clean_text() {
        assert!(CORPUS.len() >= 40_000, "corpus has {} bytes", CORPUS.len());
        assert!(!CORPUS.contains('\r'));
        assert!(!CORPUS.contains('\u{FFFD}'));
    }

    #[test]
    fn text_prompt_i_is_independent_of_batch() {
        let src = tiny_text();
        let p = 64;
        // Prompts built for a batch of 8 from offset 0 equal batch-1 prompts at offsets 0..8.
        let batch: Vec<Vec<u32>> = (0..8).map(|b| src.prompt(b, p).unwrap()).collect();
        for (i, row) in batch.iter().enumerate() {
            assert_eq!(*row, src.prompt(i, p).unwrap());
            assert_eq!(row.len(), p);
        }
        assert_ne!(batch[0], batch[1]);
        let PromptSource::Text { stream } = &src else {
            unreachable!()
        };
        assert_eq!(batch[1][..], stream[STRIDE..STRIDE + p]);
        // A longer prompt extends the shorter one.
        assert_eq!(src.prompt(3, 200).unwrap()[..p], batch[3][..]);
    }

    #[test]
    fn text_wraps_around() {
        let src = tiny_text();
        let PromptSource::Text { stream } = &src else {
            unreachable!()
        };
        let n = stream.len();
        let long = src.prompt(0, 2 * n + 5).unwrap();
        assert_eq!(long.len(), 2 * n + 5);
        assert_eq!(long[..n], stream[..]);
        assert_eq!(long[n..2 * n], stream[..]);
        assert_eq!(long[2 * n..], stream[..5]);
        // A start near the end wraps to the beginning.
        let i = (0..n).find(|i| (i * STRIDE) % n > n - 10).unwrap();
        let start = (i * STRIDE) % n;
        let pr = src.prompt(i, 20).unwrap();
        assert_eq!(pr[..n - start], stream[start..]);
        assert_eq!(pr[n - start..], stream[..20 - (n - start)]);
        // Huge indices do not overflow.
        assert_eq!(src.prompt(usize::MAX, 3).unwrap().len(), 3);
    }

    #[test]
    fn small_stream() {
        let tok = Tokenizer::from_vocab(&tiny_vocab()).unwrap();
        let src = PromptSource::text_from(&tok, "abc").unwrap();
        // "abc" → a, b, c; STRIDE mod 3 = 2.
        let (a, b, c) = (u32::from(b'a'), u32::from(b'b'), u32::from(b'c'));
        assert_eq!(src.prompt(0, 4).unwrap(), vec![a, b, c, a]);
        assert_eq!(src.prompt(1, 2).unwrap(), vec![c, a]);
        assert!(matches!(
            PromptSource::text_from(&tok, ""),
            Err(PromptError::EmptyCorpus)
        ));
        // Hand-built degenerate sources are errors, not panics.
        let empty = PromptSource::Text {
            stream: Vec::new().into(),
        };
        assert!(matches!(empty.prompt(0, 1), Err(PromptError::EmptyCorpus)));
        let no_vocab = PromptSource::Counter { seed: 0, vocab: 0 };
        assert!(matches!(
            no_vocab.prompt(0, 1),
            Err(PromptError::EmptyVocab)
        ));
        let no_lists = PromptSource::Ids {
            path: "x.json".into(),
            prompts: IdsPrompts::PerPrompt(Vec::new()),
        };
        assert_eq!(no_lists.ctx(), Some(0));
        assert!(matches!(
            no_lists.prompt(0, 1),
            Err(PromptError::NoSuchPrompt { .. })
        ));
    }

    #[test]
    fn zero_length_is_an_error() {
        let src = PromptSource::counter(1, 10).unwrap();
        assert!(matches!(src.prompt(0, 0), Err(PromptError::ZeroLength)));
        assert!(matches!(
            tiny_text().prompt(0, 0),
            Err(PromptError::ZeroLength)
        ));
        assert!(matches!(
            PromptSource::counter(1, 0),
            Err(PromptError::EmptyVocab)
        ));
    }

    #[test]
    fn ids_file_single_and_nested() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ids.json");
        std::fs::write(&f, "[1, 2, 3, 4]").unwrap();
        let src = PromptSource::ids_file(&f, 10).unwrap();
        assert_eq!(src.ctx(), Some(4));
        assert_eq!(src.prompt_count(), None);
        assert_eq!(src.prompt(0, 4).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(src.prompt(99, 4).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(src.prompt(5, 2).unwrap(), vec![1, 2]);

        std::fs::write(&f, "[[1, 2, 3], [4, 5, 6]]").unwrap();
        let src = PromptSource::ids_file(&f, 10).unwrap();
        assert_eq!(src.ctx(), Some(3));
        assert_eq!(src.prompt_count(), Some(2));
        assert_eq!(src.prompt(1, 3).unwrap(), vec![4, 5, 6]);
        let e = src.prompt(2, 3).unwrap_err();
        assert!(matches!(
            e,
            PromptError::NoSuchPrompt {
                index: 2,
                count: 2,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("ids.json") && msg.contains("prompt 2"),
            "{msg}"
        );
        let e = src.prompt(0, 4).unwrap_err();
        assert!(matches!(
            e,
            PromptError::TooShort {
                len: 3,
                requested: 4,
                ..
            }
        ));
    }

    #[test]
    fn ids_file_errors_name_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.json");
        let err = |json: &str| {
            std::fs::write(&f, json).unwrap();
            PromptSource::ids_file(&f, 100).unwrap_err()
        };
        let e = err("[[1, 2], [3, 150]]");
        assert!(matches!(
            e,
            PromptError::IdOutOfRange {
                prompt: 1,
                position: 1,
                id: 150,
                vocab: 100,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("bad.json") && msg.contains("prompt 1, position 1") && msg.contains("150"),
            "{msg}"
        );
        assert!(matches!(
            err("[[1, 2], [3]]"),
            PromptError::UnequalLengths {
                prompt: 1,
                len: 1,
                expected: 2,
                ..
            }
        ));
        assert!(matches!(
            err("[1, -2]"),
            PromptError::NotAnId {
                prompt: 0,
                position: 1,
                ..
            }
        ));
        assert!(matches!(err("[1, 2.5]"), PromptError::NotAnId { .. }));
        assert!(matches!(err("[[1], 2]"), PromptError::Shape { .. }));
        assert!(matches!(err("[]"), PromptError::Shape { .. }));
        assert!(matches!(err("[[]]"), PromptError::Shape { .. }));
        assert!(matches!(err("{\"a\": 1}"), PromptError::Shape { .. }));
        assert!(matches!(err("[1, 2"), PromptError::Json { .. }));
        let missing = dir.path().join("missing.json");
        let e = PromptSource::ids_file(&missing, 10).unwrap_err();
        assert!(matches!(e, PromptError::Read { .. }));
        assert!(e.to_string().contains("missing.json"));
    }

    #[test]
    fn counter_ids_in_range_and_deterministic() {
        let vocab = 49_152;
        let a = PromptSource::counter(42, vocab).unwrap();
        let b = PromptSource::counter(42, vocab).unwrap();
        let c = PromptSource::counter(43, vocab).unwrap();
        let pa = a.prompt(3, 512).unwrap();
        assert_eq!(pa, b.prompt(3, 512).unwrap());
        assert_ne!(pa, c.prompt(3, 512).unwrap());
        assert_ne!(pa, a.prompt(4, 512).unwrap());
        assert!(pa.iter().all(|&id| (id as usize) < vocab));
        // Prefix-stable: a shorter prompt is the start of a longer one.
        assert_eq!(a.prompt(3, 100).unwrap()[..], pa[..100]);
        assert_eq!(pa[7], counter_id(42, 3, 7, vocab));
        // Roughly uniform: both halves of a small vocabulary occur.
        let small = PromptSource::counter(1, 2)
            .unwrap()
            .prompt(0, 1000)
            .unwrap();
        let ones = small.iter().filter(|&&x| x == 1).count();
        assert!((400..600).contains(&ones), "{ones}");
        assert!(small.iter().all(|&x| x < 2));
    }

    #[test]
    fn ragged_rule() {
        assert_eq!(ragged_len(128, 0), 128);
        let got: Vec<usize> = (0..7).map(|i| ragged_len(128, i)).collect();
        assert_eq!(got, vec![128, 121, 114, 107, 100, 125, 118]);
        assert_eq!(ragged_len(128, 5), 128 - 35 % 32);
        for p in 1..300 {
            for i in 0..40 {
                let l = ragged_len(p, i);
                assert!(l >= 1 && l <= p);
                assert!(p - l < (p / 4).max(1));
            }
        }
        for i in 0..10 {
            assert_eq!(ragged_len(1, i), 1);
            assert_eq!(ragged_len(7, i), 7);
        }
        assert_eq!(ragged_len(0, 3), 0);
        assert!(ragged_len(1 << 20, usize::MAX) <= 1 << 20);
    }

    #[test]
    fn labels_and_debug() {
        assert_eq!(tiny_text().label(), "text:corpus");
        assert_eq!(
            PromptSource::counter(9, 5).unwrap().label(),
            "counter:seed=9"
        );
        assert!(format!("{:?}", tiny_text()).starts_with("Text { tokens: "));
    }
}
