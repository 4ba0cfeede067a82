//! GPT-2-style byte-level BPE tokenizers built from GGUF vocabularies.
//!
//! tracecheck reads the tokenizer a GGUF file describes (`tokenizer.ggml.*`) and rebuilds it with
//! the `tokenizers` crate: a BPE model from the vocabulary and merges, the pre-tokenizer named by
//! `tokenizer.ggml.pre`, and GPT-2's byte-level alphabet. Only `gpt2`-type vocabularies
//! (SmolLM2, Llama-3, …) are supported; anything else is refused with an error naming the file and
//! the type, so the runner can exit 2 before starting any cell.
//!
//! [`Tokenizer::encode`] never adds BOS: callers decide. [`Tokenizer::decode`] and
//! [`Tokenizer::token_text`] are lossy (invalid UTF-8 becomes U+FFFD) because they only feed
//! reports.

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// GGUF `tokenizer.ggml.token_type` of a control token (`<|endoftext|>`, `<|im_start|>`…).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `tokenizer.ggml.token_type` of a user-defined token (matched whole, not special).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The Llama-3 (`llama-bpe`) pre-tokenizer split, as in Meta's `tokenizer.json` and llama.cpp.
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer metadata of a GGUF file (`tokenizer.ggml.*`), filled by the GGUF reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model` (`gpt2`, `llama`, …).
    pub model: String,
    /// `tokenizer.ggml.pre` (`smollm`, `llama-bpe`, `gpt2`, …), absent in old files.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, spelled in GPT-2's byte-level alphabet.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`, each `"left right"`, best first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (1 normal, 3 control, 4 user-defined, …).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// Where the vocabulary came from (the GGUF path), for messages.
    pub source: String,
}

/// Why a tokenizer could not be built or could not encode.
#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("{origin}: tokenizer type `{model}`{kind} is not supported; tracecheck reads GPT-2-style BPE (`gpt2`)", kind = model_kind(model))]
    UnsupportedType { origin: String, model: String },
    #[error("{origin}: pre-tokenizer `{pre}` (tokenizer.ggml.pre) is not supported; known: smollm, gpt2, default, llama-bpe")]
    UnsupportedPre { origin: String, pre: String },
    #[error("{origin}: the vocabulary (tokenizer.ggml.tokens) is empty")]
    EmptyVocab { origin: String },
    #[error("{origin}: tokenizer.ggml.token_type has {types} entries for {tokens} tokens")]
    TokenTypesLength {
        origin: String,
        types: usize,
        tokens: usize,
    },
    #[error("{origin}: merge #{index} `{merge}` is not two tokens separated by one space")]
    BadMerge {
        origin: String,
        index: usize,
        merge: String,
    },
    #[error("{origin}: {which} token id {id} is outside the vocabulary of {vocab} tokens")]
    SpecialIdOutOfRange {
        origin: String,
        which: &'static str,
        id: u32,
        vocab: usize,
    },
    #[error("{origin}: the vocabulary has {vocab} tokens, more than u32 ids can address")]
    VocabTooLarge { origin: String, vocab: usize },
    #[error("{origin}: cannot build the BPE tokenizer: {reason}")]
    Build { origin: String, reason: String },
    #[error("{origin}: cannot tokenize the text: {reason}")]
    Encode { origin: String, reason: String },
}

/// The family a GGUF tokenizer type belongs to, for the "unsupported" message.
fn model_kind(model: &str) -> &'static str {
    match model {
        "llama" | "gemma4" => " (SentencePiece)",
        "bert" => " (WordPiece)",
        "t5" => " (Unigram)",
        "rwkv" => " (RWKV)",
        "" => " (missing tokenizer.ggml.model)",
        _ => "",
    }
}

/// Which pre-tokenizer a `tokenizer.ggml.pre` value selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreKind {
    /// GPT-2's regex split inside ByteLevel.
    Gpt2,
    /// Every digit alone, then GPT-2 (SmolLM's published `tokenizer.json`; llama.cpp `smollm`).
    Smollm,
    /// Llama-3's regex split, then ByteLevel without its own regex.
    Llama3,
}

fn pre_kind(v: &GgufVocab) -> Result<PreKind, TokenizerError> {
    match v.pre.as_deref() {
        None | Some("default" | "gpt2" | "gpt-2") => Ok(PreKind::Gpt2),
        Some("smollm") => Ok(PreKind::Smollm),
        Some("llama-bpe" | "llama3" | "llama-v3") => Ok(PreKind::Llama3),
        Some(other) => Err(TokenizerError::UnsupportedPre {
            origin: v.source.clone(),
            pre: other.to_string(),
        }),
    }
}

/// A byte-level BPE tokenizer rebuilt from a GGUF vocabulary.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    tokens: Vec<String>,
    /// Tokens matched whole in the text (control and user-defined): their text is raw, not
    /// byte-level spelled, when decoding.
    added: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
    source: String,
    pre: PreKind,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.tokens.len())
            .field("pre", &self.pre)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF vocabulary describes.
    pub fn from_vocab(v: &GgufVocab) -> Result<Tokenizer, TokenizerError> {
        let origin = v.source.clone();
        if v.model != "gpt2" {
            return Err(TokenizerError::UnsupportedType {
                origin,
                model: v.model.clone(),
            });
        }
        let pre = pre_kind(v)?;
        if v.tokens.is_empty() {
            return Err(TokenizerError::EmptyVocab { origin });
        }
        if u32::try_from(v.tokens.len()).is_err() {
            return Err(TokenizerError::VocabTooLarge {
                origin,
                vocab: v.tokens.len(),
            });
        }
        if let Some(types) = &v.token_types {
            if types.len() != v.tokens.len() {
                return Err(TokenizerError::TokenTypesLength {
                    origin,
                    types: types.len(),
                    tokens: v.tokens.len(),
                });
            }
        }
        for (which, id) in [("BOS", v.bos), ("EOS", v.eos)] {
            if let Some(id) = id {
                if id as usize >= v.tokens.len() {
                    return Err(TokenizerError::SpecialIdOutOfRange {
                        origin,
                        which,
                        id,
                        vocab: v.tokens.len(),
                    });
                }
            }
        }

        // Some vocabularies repeat a spelling; the first id wins, as in llama.cpp's text→id map.
        let mut vocab = Vocab::default();
        for (id, token) in v.tokens.iter().enumerate() {
            vocab.entry(token.clone()).or_insert(id as u32);
        }
        let mut merges: Merges = Vec::with_capacity(v.merges.len());
        for (index, merge) in v.merges.iter().enumerate() {
            // Byte-level tokens never hold a real space (it is spelled `Ġ`), so one space splits.
            match merge.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    merges.push((a.to_string(), b.to_string()))
                }
                _ => {
                    return Err(TokenizerError::BadMerge {
                        origin,
                        index,
                        merge: merge.clone(),
                    })
                }
            }
        }
        let build_err = |reason: String| TokenizerError::Build {
            origin: origin.clone(),
            reason,
        };
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            // Llama-3 emits a pre-token that is itself in the vocabulary whole (HF and llama.cpp).
            .ignore_merges(pre == PreKind::Llama3)
            .build()
            .map_err(|e| build_err(e.to_string()))?;

        let pre_tokenizer: PreTokenizerWrapper = match pre {
            PreKind::Gpt2 => ByteLevel::new(false, true, true).into(),
            PreKind::Smollm => Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            PreKind::Llama3 => {
                let split = Split::new(
                    SplitPattern::Regex(LLAMA3_SPLIT.to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| build_err(format!("Llama-3 split regex: {e}")))?;
                Sequence::new(vec![
                    split.into(),
                    ByteLevel::new(false, true, false).into(),
                ])
                .into()
            }
        };

        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        // Control tokens must stay whole: registered as special added tokens they are matched
        // in the text before pre-tokenization, and keep their vocabulary ids.
        let types = v.token_types.as_deref().unwrap_or(&[]);
        let mut added = vec![false; v.tokens.len()];
        let mut special = Vec::new();
        let mut user = Vec::new();
        for (id, (token, &ty)) in v.tokens.iter().zip(types).enumerate() {
            if token.is_empty() {
                continue;
            }
            if ty == TOKEN_TYPE_CONTROL {
                special.push(AddedToken::from(token.clone(), true).normalized(false));
                added[id] = true;
            } else if ty == TOKEN_TYPE_USER_DEFINED {
                user.push(AddedToken::from(token.clone(), false).normalized(false));
                added[id] = true;
            }
        }
        inner
            .add_special_tokens(special)
            .map_err(|e| build_err(format!("special tokens: {e}")))?;
        inner
            .add_tokens(user)
            .map_err(|e| build_err(format!("user-defined tokens: {e}")))?;

        Ok(Tokenizer {
            inner,
            tokens: v.tokens.clone(),
            added,
            bos: v.bos,
            eos: v.eos,
            source: origin,
            pre,
        })
    }

    /// Token ids of `text`, without BOS or any other added token (callers decide).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode {
                origin: self.source.clone(),
                reason: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, lossy (invalid UTF-8 → U+FFFD, unknown ids → U+FFFD), for reports.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            self.push_token_bytes(id, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// One token decoded to text (lossy), for top-5 tables.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }

    /// Number of token ids (the GGUF vocabulary's length).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// `tokenizer.ggml.bos_token_id`, if the file names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// `tokenizer.ggml.eos_token_id`, if the file names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Where the vocabulary came from (for messages).
    pub fn source(&self) -> &str {
        &self.source
    }

    // Decoded per token rather than through `tokenizers::decode`, so that it never fails, keeps
    // ids whose spelling is repeated, and shows unknown ids instead of dropping them.
    fn push_token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let Some(token) = self.tokens.get(id as usize) else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            return;
        };
        if self.added[id as usize] {
            out.extend_from_slice(token.as_bytes());
            return;
        }
        let map = unicode_to_byte();
        for c in token.chars() {
            match map.get(&c) {
                Some(&b) => out.push(b),
                // Not byte-level spelled (a foreign GGUF): keep the character itself.
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

/// GPT-2's `bytes_to_unicode`: the printable character that spells each byte, indexed by byte.
pub fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        // Every value is below 0x144, a valid scalar value.
        *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

fn unicode_to_byte() -> &'static HashMap<char, u8> {
    static MAP: std::sync::OnceLock<HashMap<char, u8>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        byte_to_unicode()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect()
    })
}

/// The merges of [`tiny_vocab`], best first; each part exists before the merge that uses it.
const TINY_MERGES: &[&str] = &[
    "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o", "e n",
    "Ġ c", "i t", "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p", "o u", "Ġa n",
    "a l", "a r", "Ġt o", "Ġ m", "Ġo f", "Ġ in", "Ġ d", "Ġ h", "Ġan d", "i c", "a s", "l e",
    "Ġt h", "i on", "o m", "l l", "en t", "Ġ n", "Ġ l", "s t", "Ġ re", "v e", "Ġ e", "r o", "l y",
    "Ġb e", "Ġ g", "Ġ T", "c t", "Ġ y", "i d", "o t", "Ġ I", "u t", "Ġw h", "Ġ ,", "Ġ .",
];

/// The special token of [`tiny_vocab`], used as BOS and EOS.
pub const TINY_EOT: &str = "<|endoftext|>";

/// A small deterministic GPT-2-style vocabulary for the tiny test model: the 256 byte-level
/// symbols in byte order (id = byte), one token per entry of a fixed list of common English
/// merges, then `<|endoftext|>` (control; BOS and EOS). Pre-tokenizer `smollm`, model `gpt2`.
pub fn tiny_vocab() -> GgufVocab {
    let mut tokens: Vec<String> = byte_to_unicode().iter().map(|c| c.to_string()).collect();
    let mut merges = Vec::with_capacity(TINY_MERGES.len());
    for m in TINY_MERGES {
        let merged: String = m.split(' ').collect();
        tokens.push(merged);
        merges.push((*m).to_string());
    }
    let mut token_types = vec![1; tokens.len()];
    let eot = tokens.len() as u32;
    tokens.push(TINY_EOT.to_string());
    token_types.push(TOKEN_TYPE_CONTROL);
    GgufVocab {
        model: "gpt2".to_string(),
        pre: Some("smollm".to_string()),
        tokens,
        merges,
        token_types: Some(token_types),
        bos: Some(eot),
        eos: Some(eot),
        source: "tiny test vocabulary".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Tokenizer {
        Tokenizer::from_vocab(&tiny_vocab()).expect("tiny vocabulary builds")
    }

    #[test]
    fn tokenizer_is_shareable_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Tokenizer>();
        shareable::<crate::prompts::PromptSource>();
    }

    #[test]
    fn tiny_vocab_is_well_formed() {
        let v = tiny_vocab();
        assert_eq!(v.tokens.len(), 256 + TINY_MERGES.len() + 1);
        let mut seen = std::collections::HashSet::new();
        for t in &v.tokens {
            assert!(seen.insert(t.clone()), "duplicate token {t:?}");
        }
        for (i, m) in v.merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').expect("two parts");
            let merged = format!("{a}{b}");
            let pos = |s: &str| v.tokens.iter().position(|t| t == s);
            let at = pos(&merged).expect("merged token present");
            assert_eq!(at, 256 + i, "merge {m} adds its token in order");
            assert!(
                pos(a).expect("left part") < at,
                "{m}: left part comes first"
            );
            assert!(
                pos(b).expect("right part") < at,
                "{m}: right part comes first"
            );
        }
        let t = tiny();
        assert_eq!(t.vocab_size(), v.tokens.len());
        assert_eq!(t.bos(), Some(v.tokens.len() as u32 - 1));
        assert_eq!(t.eos(), t.bos());
    }

    #[test]
    fn tiny_round_trips_ascii_and_unicode() {
        let t = tiny();
        for s in [
            "",
            "the cat sat on the mat, and then the end.",
            "We hold these truths to be self-evident, that all men are created equal",
            "in 1776, 12345 and   three spaces\n\nnew lines\ttab",
            "café, naïve, 中文, emoji 🦀👍🏽, Ω≈ç√",
            "don't, I'll, we've, they're",
        ] {
            let ids = t.encode(s).expect("encodes");
            assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
            assert_eq!(t.decode(&ids), s);
        }
    }

    #[test]
    fn tiny_uses_merges_digits_and_specials() {
        let t = tiny();
        let v = tiny_vocab();
        let id = |s: &str| v.tokens.iter().position(|t| t == s).expect("token") as u32;
        assert_eq!(t.encode(" the").unwrap(), vec![id("Ġthe")]);
        // Digits are split one by one (smollm): no merge could join them anyway, but the
        // whitespace before them stays one pre-token.
        assert_eq!(
            t.encode("12").unwrap(),
            vec![u32::from(b'1'), u32::from(b'2')]
        );
        let eot = t.eos().unwrap();
        assert_eq!(
            t.encode("a<|endoftext|>b").unwrap(),
            vec![u32::from(b'a'), eot, u32::from(b'b')]
        );
        assert_eq!(t.token_text(eot), TINY_EOT);
        assert_eq!(t.token_text(id("Ġthe")), " the");
        assert_eq!(t.token_text(u32::MAX), "\u{FFFD}");
        // No BOS is added by encode.
        assert_ne!(t.encode("x").unwrap().first(), Some(&eot));
    }

    #[test]
    fn unsupported_type_is_named() {
        let mut v = tiny_vocab();
        v.model = "llama".into();
        v.source = "/models/x.gguf".into();
        let e = Tokenizer::from_vocab(&v).unwrap_err();
        assert!(matches!(e, TokenizerError::UnsupportedType { .. }));
        assert_eq!(
            e.to_string(),
            "/models/x.gguf: tokenizer type `llama` (SentencePiece) is not supported; \
             tracecheck reads GPT-2-style BPE (`gpt2`)"
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut v = tiny_vocab();
        v.pre = Some("qwen2".into());
        let e = Tokenizer::from_vocab(&v).unwrap_err();
        assert!(e.to_string().contains("`qwen2`"), "{e}");

        let mut v = tiny_vocab();
        v.merges.push("nospace".into());
        let e = Tokenizer::from_vocab(&v).unwrap_err();
        assert!(matches!(e, TokenizerError::BadMerge { index, .. } if index == TINY_MERGES.len()));

        let mut v = tiny_vocab();
        v.merges.push("Ġ zzz".into());
        let e = Tokenizer::from_vocab(&v).unwrap_err();
        assert!(matches!(e, TokenizerError::Build { .. }), "{e}");

        let mut v = tiny_vocab();
        v.eos = Some(100_000);
        let e = Tokenizer::from_vocab(&v).unwrap_err();
        assert!(matches!(e, TokenizerError::SpecialIdOutOfRange { .. }));

        let mut v = tiny_vocab();
        v.token_types = Some(vec![1; 3]);
        assert!(matches!(
            Tokenizer::from_vocab(&v).unwrap_err(),
            TokenizerError::TokenTypesLength { .. }
        ));

        let mut v = tiny_vocab();
        v.tokens.clear();
        v.merges.clear();
        v.token_types = None;
        v.bos = None;
        v.eos = None;
        assert!(matches!(
            Tokenizer::from_vocab(&v).unwrap_err(),
            TokenizerError::EmptyVocab { .. }
        ));
    }

    #[test]
    fn llama3_split_groups_digits_by_three() {
        // Llama-3 splits digit runs into groups of up to three; with byte-only merges the ids are
        // the bytes either way, so check the pre-tokenization itself.
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let mut v = tiny_vocab();
        v.pre = Some("llama-bpe".into());
        let t = Tokenizer::from_vocab(&v).unwrap();
        let pre = t.inner.get_pre_tokenizer().expect("has a pre-tokenizer");
        let mut s = PreTokenizedString::from("x 1234567 I'M\n\n  ok");
        pre.pre_tokenize(&mut s).unwrap();
        let parts: Vec<String> = s
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(piece, _, _)| piece.to_string())
            .collect();
        assert_eq!(
            parts,
            ["x", "Ġ", "123", "456", "7", "ĠI", "'M", "ĊĊ", "Ġ", "Ġok"]
        );
    }

    #[test]
    fn gpt2_and_llama3_pre_tokenizers_build() {
        for pre in [None, Some("gpt2"), Some("default"), Some("llama-bpe")] {
            let mut v = tiny_vocab();
            v.pre = pre.map(str::to_string);
            let t = Tokenizer::from_vocab(&v).expect("builds");
            let s = "Hello  world 12345\n\n it's ok";
            assert_eq!(t.decode(&t.encode(s).unwrap()), s, "pre {pre:?}");
        }
    }
}
