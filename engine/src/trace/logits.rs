//! logits.safetensors: tensors `decode` and `prefill`, each [batch, span, vocab]. Written as
//! F32; F16 and BF16 from other engines are read too. Files can be gigabytes, so the reader maps
//! the file and hands out rows without copying when it can.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype as StDtype, SafeTensorError, View};
use safetensors::SafeTensors;

use crate::trace::atomic::write_file_atomic_with;
use crate::trace::TraceError;

/// `__metadata__["rows"]`: DESIGN's row semantics, repeated in every file so that it explains
/// itself.
pub const ROW_SEMANTICS: &str = "Tensors decode and prefill are [batch, span, vocab] logits. \
P = prompt length = ctx. decode row 0 is the logits at position P-1 from the prompt prefill \
(it predicts generated[0]); decode row j >= 1 is the logits of the decode step that consumed \
generated[j-1], through the KV cache. prefill row j is position P-1+j of one forward pass, \
without cache, over prompt + generated[0..span-1] (P+span-1 tokens). Greedy generation never \
stops at EOS; argmax ties go to the lowest id. Values are exactly as the engine produced them.";

/// `__metadata__["format"]`.
pub const FORMAT_NAME: &str = "tracecheck-logits";
/// `__metadata__["version"]`.
pub const FORMAT_VERSION: &str = "1";

// safetensors' own limit; a larger length means this is not a safetensors file at all.
const MAX_HEADER: u64 = 100_000_000;

/// Which of the two tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Through the KV cache, one token at a time.
    Decode,
    /// One no-cache forward pass.
    Prefill,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Decode, Side::Prefill];

    /// The tensor name.
    pub const fn name(self) -> &'static str {
        match self {
            Side::Decode => "decode",
            Side::Prefill => "prefill",
        }
    }
}

/// The element type of a logits file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogitDtype {
    F32,
    F16,
    BF16,
}

impl LogitDtype {
    /// Bytes per value.
    pub const fn size(self) -> usize {
        match self {
            LogitDtype::F32 => 4,
            LogitDtype::F16 | LogitDtype::BF16 => 2,
        }
    }

    /// The safetensors spelling.
    pub const fn name(self) -> &'static str {
        match self {
            LogitDtype::F32 => "F32",
            LogitDtype::F16 => "F16",
            LogitDtype::BF16 => "BF16",
        }
    }
}

/// Converts little-endian `bytes` of `dtype` into `out` (`out.len()` values; `bytes` must hold
/// exactly that many). For hot loops over [`LogitsFile::raw_row`] with a reused buffer.
///
/// # Panics
/// If `bytes.len() != out.len() * dtype.size()`.
pub fn to_f32_into(dtype: LogitDtype, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        bytes.len(),
        out.len() * dtype.size(),
        "byte/value count mismatch"
    );
    match dtype {
        LogitDtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        LogitDtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        LogitDtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
    }
}

/// Reinterprets F32 bytes in place when the platform and alignment allow it.
fn as_f32(bytes: &[u8]) -> Option<&[f32]> {
    let fits = cfg!(target_endian = "little")
        && bytes.as_ptr().align_offset(std::mem::align_of::<f32>()) == 0
        && bytes.len().is_multiple_of(4);
    // SAFETY: the pointer is aligned for f32, the length is a whole number of f32s inside the
    // same allocation, every bit pattern is a valid f32, and the result borrows `bytes`.
    fits.then(|| unsafe {
        std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4)
    })
}

/// The file's bytes: mapped, or read when mapping is not possible.
#[derive(Debug)]
enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A validated logits.safetensors, mapped into memory.
#[derive(Debug)]
pub struct LogitsFile {
    path: PathBuf,
    bytes: Backing,
    dtype: LogitDtype,
    dims: (usize, usize, usize),
    decode: Range<usize>,
    prefill: Range<usize>,
    metadata: BTreeMap<String, String>,
}

impl LogitsFile {
    /// Maps and validates `path`. Nothing is copied: rows are read from the mapping on demand.
    /// The mapping assumes nobody rewrites the file in place while it is open (tracecheck
    /// replaces files by rename, which leaves an open mapping intact).
    pub fn open(path: &Path) -> Result<LogitsFile, TraceError> {
        let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
        let len = file.metadata().map_err(|e| TraceError::io(path, e))?.len();
        let bytes = if len == 0 {
            // Mapping an empty file fails on some platforms; the check below reports it.
            Backing::Owned(Vec::new())
        } else {
            // SAFETY: see the doc comment; a concurrent in-place rewrite is outside the format.
            match unsafe { memmap2::Mmap::map(&file) } {
                Ok(m) => Backing::Mmap(m),
                Err(_) => Backing::Owned(std::fs::read(path).map_err(|e| TraceError::io(path, e))?),
            }
        };
        Self::validate(path, bytes)
    }

    /// Validates a file already in memory; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<LogitsFile, TraceError> {
        Self::validate(path, Backing::Owned(bytes))
    }

    fn validate(path: &Path, bytes: Backing) -> Result<LogitsFile, TraceError> {
        let st_err = |fault: String| TraceError::Safetensors {
            path: path.to_path_buf(),
            fault,
        };
        let bad = |fault: String| TraceError::BadLogits {
            path: path.to_path_buf(),
            fault,
        };
        let buf: &[u8] = &bytes;
        let len = buf.len() as u64;
        let Some(n_bytes) = buf.get(..8) else {
            return Err(st_err(format!(
                "file is {len} bytes, too short for a safetensors header"
            )));
        };
        let n = u64::from_le_bytes(n_bytes.try_into().expect("8 bytes"));
        if n > MAX_HEADER {
            return Err(st_err(format!(
                "header length {n} is implausible (over {MAX_HEADER} bytes)"
            )));
        }
        let header_end = 8 + n;
        if header_end > len {
            return Err(TraceError::Truncated {
                path: path.to_path_buf(),
                expected: header_end,
                actual: len,
            });
        }
        // Our own look at the extent the header claims, so a short file is reported as truncated
        // with both sizes, not as safetensors' generic "incomplete metadata".
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&buf[8..header_end as usize])
                .map_err(|e| st_err(format!("header is not valid JSON: {e}")))?;
        let data_len = header
            .iter()
            .filter(|(k, _)| k.as_str() != "__metadata__")
            .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
            .max()
            .unwrap_or(0);
        let expected = header_end.saturating_add(data_len);
        if expected > len {
            return Err(TraceError::Truncated {
                path: path.to_path_buf(),
                expected,
                actual: len,
            });
        }
        if expected < len {
            return Err(st_err(format!(
                "{} bytes after the last tensor (file is {len} bytes, header says {expected})",
                len - expected
            )));
        }
        let (_, meta) = SafeTensors::read_metadata(buf).map_err(|e| st_err(e.to_string()))?;

        let info = |side: Side| {
            meta.info(side.name())
                .ok_or_else(|| TraceError::MissingTensor {
                    path: path.to_path_buf(),
                    name: side.name().to_string(),
                })
        };
        let (d, p) = (info(Side::Decode)?, info(Side::Prefill)?);
        let dtype_of = |side: Side, dt: StDtype| match dt {
            StDtype::F32 => Ok(LogitDtype::F32),
            StDtype::F16 => Ok(LogitDtype::F16),
            StDtype::BF16 => Ok(LogitDtype::BF16),
            other => Err(TraceError::BadDtype {
                path: path.to_path_buf(),
                tensor: side.name().to_string(),
                dtype: format!("{other:?}"),
            }),
        };
        let dtype = dtype_of(Side::Decode, d.dtype)?;
        let prefill_dtype = dtype_of(Side::Prefill, p.dtype)?;
        if dtype != prefill_dtype {
            return Err(bad(format!(
                "decode is {} but prefill is {}; both must have one dtype",
                dtype.name(),
                prefill_dtype.name()
            )));
        }
        if d.shape.len() != 3 {
            return Err(bad(format!(
                "tensor `decode` has shape {:?}; expected [batch, span, vocab]",
                d.shape
            )));
        }
        if p.shape != d.shape {
            return Err(bad(format!(
                "decode has shape {:?} but prefill has {:?}; they must match",
                d.shape, p.shape
            )));
        }
        if d.shape.contains(&0) {
            return Err(bad(format!(
                "tensors have an empty dimension: {:?}",
                d.shape
            )));
        }
        let dims = (d.shape[0], d.shape[1], d.shape[2]);

        let metadata: BTreeMap<String, String> = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        // Absent keys are accepted (other engines); contradicting ones are not.
        if let Some(f) = metadata.get("format").filter(|f| *f != FORMAT_NAME) {
            return Err(bad(format!(
                "__metadata__ format is `{f}`, expected `{FORMAT_NAME}`"
            )));
        }
        if let Some(v) = metadata.get("version").filter(|v| *v != FORMAT_VERSION) {
            return Err(bad(format!(
                "logits format version `{v}` is not supported (this build reads {FORMAT_VERSION})"
            )));
        }
        for (key, actual) in [("batch", dims.0), ("span", dims.1), ("vocab", dims.2)] {
            if let Some(said) = metadata.get(key) {
                if said.parse::<usize>().ok() != Some(actual) {
                    return Err(bad(format!(
                        "__metadata__ says {key} `{said}` but the tensors have {actual}"
                    )));
                }
            }
        }

        let base = header_end as usize;
        let range = |off: (usize, usize)| base + off.0..base + off.1;
        Ok(LogitsFile {
            path: path.to_path_buf(),
            dtype,
            dims,
            decode: range(d.data_offsets),
            prefill: range(p.data_offsets),
            metadata,
            bytes,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (batch, span, vocab).
    pub fn dims(&self) -> (usize, usize, usize) {
        self.dims
    }

    /// The stored element type (both tensors share it).
    pub fn dtype(&self) -> LogitDtype {
        self.dtype
    }

    /// `__metadata__` (empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A whole tensor's little-endian bytes, [batch, span, vocab] in C order.
    pub fn raw(&self, side: Side) -> &[u8] {
        let r = match side {
            Side::Decode => &self.decode,
            Side::Prefill => &self.prefill,
        };
        &self.bytes[r.clone()]
    }

    /// A whole tensor as f32 without copying, when it is F32 and suitably aligned (always for
    /// files this library writes, on little-endian machines).
    pub fn tensor_f32(&self, side: Side) -> Option<&[f32]> {
        match self.dtype {
            LogitDtype::F32 => as_f32(self.raw(side)),
            _ => None,
        }
    }

    /// Row j of sequence b, as little-endian bytes of [`Self::dtype`].
    ///
    /// # Panics
    /// If `b >= batch` or `j >= span`.
    pub fn raw_row(&self, side: Side, b: usize, j: usize) -> &[u8] {
        let (batch, span, vocab) = self.dims;
        assert!(
            b < batch && j < span,
            "row ({b}, {j}) out of range for batch {batch}, span {span}"
        );
        let row = vocab * self.dtype.size();
        let start = (b * span + j) * row;
        &self.raw(side)[start..start + row]
    }

    /// Row j of sequence b as f32: borrowed from the mapping when F32 and aligned, converted
    /// otherwise.
    ///
    /// # Panics
    /// If `b >= batch` or `j >= span`.
    pub fn row(&self, side: Side, b: usize, j: usize) -> Cow<'_, [f32]> {
        let raw = self.raw_row(side, b, j);
        if self.dtype == LogitDtype::F32 {
            if let Some(v) = as_f32(raw) {
                return Cow::Borrowed(v);
            }
        }
        let mut out = vec![0.0; self.dims.2];
        to_f32_into(self.dtype, raw, &mut out);
        Cow::Owned(out)
    }

    /// Row j of sequence b converted into `out` (length vocab), with no allocation.
    ///
    /// # Panics
    /// If `b >= batch`, `j >= span` or `out.len() != vocab`.
    pub fn row_into(&self, side: Side, b: usize, j: usize, out: &mut [f32]) {
        to_f32_into(self.dtype, self.raw_row(side, b, j), out);
    }
}

/// Borrows an f32 slice as a safetensors tensor, so writing streams from the caller's buffer.
struct F32View<'a> {
    shape: [usize; 3],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> StDtype {
        StDtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            // SAFETY: initialised f32s are initialised bytes, and u8 needs no alignment.
            Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(
                    self.data.as_ptr().cast::<u8>(),
                    std::mem::size_of_val(self.data),
                )
            })
        } else {
            Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
    }

    fn data_len(&self) -> usize {
        std::mem::size_of_val(self.data)
    }
}

/// Writes logits.safetensors atomically: `decode` and `prefill` are [batch, span, vocab] in C
/// order (`(b * span + j) * vocab + token`), stored F32 with the format's `__metadata__`.
pub fn write_logits(
    path: &Path,
    batch: usize,
    span: usize,
    vocab: usize,
    decode: &[f32],
    prefill: &[f32],
) -> Result<(), TraceError> {
    let bad = |fault: String| TraceError::BadLogits {
        path: path.to_path_buf(),
        fault,
    };
    if batch == 0 || span == 0 || vocab == 0 {
        return Err(bad(format!(
            "empty dimension: batch {batch}, span {span}, vocab {vocab}"
        )));
    }
    let n = batch
        .checked_mul(span)
        .and_then(|x| x.checked_mul(vocab))
        .ok_or_else(|| bad("batch × span × vocab overflows".into()))?;
    for (side, data) in [(Side::Decode, decode), (Side::Prefill, prefill)] {
        if data.len() != n {
            return Err(bad(format!(
                "{} has {} values, expected batch {batch} × span {span} × vocab {vocab} = {n}",
                side.name(),
                data.len()
            )));
        }
    }
    let metadata: HashMap<String, String> = [
        ("format", FORMAT_NAME.to_string()),
        ("version", FORMAT_VERSION.to_string()),
        ("rows", ROW_SEMANTICS.to_string()),
        ("batch", batch.to_string()),
        ("span", span.to_string()),
        ("vocab", vocab.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let shape = [batch, span, vocab];
    let tensors = [
        (
            "decode",
            F32View {
                shape,
                data: decode,
            },
        ),
        (
            "prefill",
            F32View {
                shape,
                data: prefill,
            },
        ),
    ];
    write_file_atomic_with(path, |tmp| {
        safetensors::serialize_to_file(tensors, Some(metadata), tmp).map_err(|e| match e {
            SafeTensorError::IoError(io) => TraceError::io(tmp, io),
            other => TraceError::Safetensors {
                path: tmp.to_path_buf(),
                fault: other.to_string(),
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 - 7.0) * scale).collect()
    }

    /// A tensor of any dtype from raw bytes, to hand-make files other engines might write.
    struct Raw {
        dtype: StDtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    }

    impl View for &Raw {
        fn dtype(&self) -> StDtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }

    fn raw(dtype: StDtype, shape: &[usize], data: Vec<u8>) -> Raw {
        Raw {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    fn f32_raw(shape: &[usize], v: &[f32]) -> Raw {
        raw(
            StDtype::F32,
            shape,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    fn file(tensors: &[(&str, &Raw)], meta: Option<&[(&str, &str)]>) -> Vec<u8> {
        let meta = meta.map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        });
        safetensors::serialize(tensors.iter().map(|(n, t)| (*n, *t)), meta).unwrap()
    }

    fn open_bytes(bytes: Vec<u8>) -> Result<LogitsFile, TraceError> {
        LogitsFile::from_bytes(Path::new("c/logits.safetensors"), bytes)
    }

    #[test]
    fn f32_round_trip_is_zero_copy() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logits.safetensors");
        let (b, s, v) = (2, 3, 5);
        let dec = ramp(b * s * v, 0.5);
        let pre = ramp(b * s * v, -0.25);
        write_logits(&path, b, s, v, &dec, &pre).unwrap();
        let f = LogitsFile::open(&path).unwrap();
        assert_eq!(f.dims(), (b, s, v));
        assert_eq!(f.dtype(), LogitDtype::F32);
        assert_eq!(f.tensor_f32(Side::Decode).unwrap(), dec.as_slice());
        assert_eq!(f.tensor_f32(Side::Prefill).unwrap(), pre.as_slice());
        for bi in 0..b {
            for j in 0..s {
                let at = (bi * s + j) * v;
                let row = f.row(Side::Decode, bi, j);
                assert!(matches!(row, Cow::Borrowed(_)), "row copied");
                assert_eq!(&*row, &dec[at..at + v]);
                assert_eq!(&*f.row(Side::Prefill, bi, j), &pre[at..at + v]);
                let mut out = vec![0.0; v];
                f.row_into(Side::Prefill, bi, j, &mut out);
                assert_eq!(out, &pre[at..at + v]);
                assert_eq!(f.raw_row(Side::Decode, bi, j).len(), v * 4);
            }
        }
        let m = f.metadata();
        assert_eq!(m["format"], FORMAT_NAME);
        assert_eq!(m["version"], "1");
        assert_eq!(m["rows"], ROW_SEMANTICS);
        assert_eq!((m["batch"].as_str(), m["vocab"].as_str()), ("2", "5"));
        // The file is plain safetensors for any other reader.
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("prefill").unwrap().shape(), [2, 3, 5]);
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn special_values_survive_bit_exact() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("l.safetensors");
        let dec = [f32::NAN, f32::INFINITY, -0.0, f32::MIN_POSITIVE / 2.0];
        let pre = [1.0, f32::NEG_INFINITY, f32::MAX, -1e-45];
        write_logits(&path, 1, 1, 4, &dec, &pre).unwrap();
        let f = LogitsFile::open(&path).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&f.row(Side::Decode, 0, 0)), bits(&dec));
        assert_eq!(bits(&f.row(Side::Prefill, 0, 0)), bits(&pre));
    }

    #[test]
    fn reads_f16_and_bf16() {
        let vals = [0.5f32, -2.0, 1.25, 65504.0, -0.0, 3.0];
        let shape = [1, 2, 3];
        let h: Vec<u8> = vals
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        let f16 = raw(StDtype::F16, &shape, h);
        let f = open_bytes(file(&[("decode", &f16), ("prefill", &f16)], None)).unwrap();
        assert_eq!(f.dtype(), LogitDtype::F16);
        assert!(f.tensor_f32(Side::Decode).is_none());
        assert_eq!(&*f.row(Side::Decode, 0, 1), &vals[3..6]);
        assert_eq!(&*f.row(Side::Prefill, 0, 0), &vals[0..3]);

        let vals = [1.0f32, -0.15625, 3.0e38, 7.0, 0.0078125, -256.0];
        let b: Vec<u8> = vals
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        let expect: Vec<f32> = vals
            .iter()
            .map(|x| half::bf16::from_f32(*x).to_f32())
            .collect();
        let bf16 = raw(StDtype::BF16, &shape, b);
        let f = open_bytes(file(&[("decode", &bf16), ("prefill", &bf16)], None)).unwrap();
        assert_eq!(f.dtype(), LogitDtype::BF16);
        assert_eq!(&*f.row(Side::Decode, 0, 0), &expect[0..3]);
        assert_eq!(&*f.row(Side::Decode, 0, 1), &expect[3..6]);
        assert_eq!(expect[0..2], [1.0, -0.15625]);
    }

    #[test]
    fn unaligned_f32_data_is_converted_not_misread() {
        // A header whose length keeps the data 4-byte misaligned (valid safetensors, which only
        // pads to 8 when its own writer is used).
        let v = [1.5f32, -2.5, 3.25, 0.125];
        let mut header = String::from(
            r#"{"decode":{"dtype":"F32","shape":[1,1,2],"data_offsets":[0,8]},"prefill":{"dtype":"F32","shape":[1,1,2],"data_offsets":[8,16]}}"#,
        );
        while header.len() % 4 != 1 {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("u.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let f = LogitsFile::open(&path).unwrap();
        assert!(f.tensor_f32(Side::Decode).is_none());
        let row = f.row(Side::Prefill, 0, 0);
        assert!(matches!(row, Cow::Owned(_)));
        assert_eq!(&*row, &v[2..4]);
        assert_eq!(&*f.row(Side::Decode, 0, 0), &v[0..2]);
    }

    #[test]
    fn truncated_files() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logits.safetensors");
        let n = 4 * 8 * 1000;
        write_logits(&path, 4, 8, 1000, &ramp(n, 1.0), &ramp(n, 2.0)).unwrap();
        let full = std::fs::read(&path).unwrap();
        let total = full.len() as u64;

        std::fs::write(&path, &full[..full.len() - 100_000]).unwrap();
        match LogitsFile::open(&path).unwrap_err() {
            TraceError::Truncated {
                path: p,
                expected,
                actual,
            } => {
                assert_eq!((expected, actual), (total, total - 100_000));
                assert_eq!(p, path);
            }
            e => panic!("{e}"),
        }
        let msg = LogitsFile::open(&path).unwrap_err().to_string();
        let want = format!(
            "truncated (header says {}, file is {})",
            crate::trace::human_size(total),
            crate::trace::human_size(total - 100_000)
        );
        assert!(msg.ends_with(&want), "{msg}");
        assert!(want.contains("256.") && want.contains("kB"), "{want}");
        assert!(msg.contains("logits.safetensors"), "{msg}");

        std::fs::write(&path, &full[..40]).unwrap();
        assert!(matches!(
            LogitsFile::open(&path).unwrap_err(),
            TraceError::Truncated { actual: 40, .. }
        ));
        std::fs::write(&path, &full[..5]).unwrap();
        let e = LogitsFile::open(&path).unwrap_err().to_string();
        assert!(e.contains("too short for a safetensors header"), "{e}");
        std::fs::write(&path, b"").unwrap();
        assert!(LogitsFile::open(&path).is_err());

        let mut longer = full.clone();
        longer.extend_from_slice(&[0; 12]);
        std::fs::write(&path, &longer).unwrap();
        let e = LogitsFile::open(&path).unwrap_err().to_string();
        assert!(e.contains("12 bytes after the last tensor"), "{e}");
    }

    #[test]
    fn not_safetensors() {
        let e = open_bytes(b"{\"hello\": \"this is json\"}".to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("implausible"), "{e}");
        let mut bytes = 4u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"nope");
        let e = open_bytes(bytes).unwrap_err().to_string();
        assert!(e.contains("header is not valid JSON"), "{e}");
        // Overlapping offsets: caught by safetensors' own validation.
        let header = r#"{"decode":{"dtype":"F32","shape":[1,1,1],"data_offsets":[0,4]},"prefill":{"dtype":"F32","shape":[1,1,1],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let e = open_bytes(bytes).unwrap_err();
        assert!(matches!(e, TraceError::Safetensors { .. }), "{e}");
    }

    #[test]
    fn misshaped_files() {
        let a = f32_raw(&[1, 2, 3], &[0.0; 6]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file(&[("decode", &a)], None), "missing tensor `prefill`"),
            (file(&[("prefill", &a)], None), "missing tensor `decode`"),
            (
                file(
                    &[("decode", &a), ("prefill", &f32_raw(&[1, 2, 4], &[0.0; 8]))],
                    None,
                ),
                "decode has shape [1, 2, 3] but prefill has [1, 2, 4]",
            ),
            (
                file(
                    &[("decode", &f32_raw(&[2, 3], &[0.0; 6])), ("prefill", &a)],
                    None,
                ),
                "tensor `decode` has shape [2, 3]; expected [batch, span, vocab]",
            ),
            (
                file(
                    &[
                        ("decode", &raw(StDtype::I32, &[1, 2, 3], vec![0; 24])),
                        ("prefill", &a),
                    ],
                    None,
                ),
                "tensor `decode` is I32; logits must be F32, F16 or BF16",
            ),
            (
                file(
                    &[
                        ("decode", &a),
                        ("prefill", &raw(StDtype::F16, &[1, 2, 3], vec![0; 12])),
                    ],
                    None,
                ),
                "decode is F32 but prefill is F16",
            ),
            (
                file(
                    &[
                        ("decode", &f32_raw(&[1, 0, 3], &[])),
                        ("prefill", &f32_raw(&[1, 0, 3], &[])),
                    ],
                    None,
                ),
                "empty dimension",
            ),
            (
                file(&[("decode", &a), ("prefill", &a)], Some(&[("vocab", "4")])),
                "__metadata__ says vocab `4` but the tensors have 3",
            ),
            (
                file(
                    &[("decode", &a), ("prefill", &a)],
                    Some(&[("version", "2")]),
                ),
                "logits format version `2` is not supported",
            ),
            (
                file(
                    &[("decode", &a), ("prefill", &a)],
                    Some(&[("format", "other")]),
                ),
                "format is `other`",
            ),
        ];
        for (bytes, want) in cases {
            let e = open_bytes(bytes).unwrap_err().to_string();
            assert!(e.starts_with("c/logits.safetensors: "), "{e}");
            assert!(e.contains(want), "want {want:?}, got {e}");
        }
        // Extra tensors are fine (other engines may store more).
        let f = open_bytes(file(
            &[("decode", &a), ("prefill", &a), ("hidden", &a)],
            None,
        ));
        assert_eq!(f.unwrap().dims(), (1, 2, 3));
    }

    #[test]
    fn writer_checks_lengths_and_leaves_nothing_on_error() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logits.safetensors");
        let e = write_logits(&path, 2, 2, 2, &[0.0; 8], &[0.0; 7]).unwrap_err();
        assert!(
            e.to_string()
                .contains("prefill has 7 values, expected batch 2 × span 2 × vocab 2 = 8"),
            "{e}"
        );
        assert!(write_logits(&path, 0, 2, 2, &[], &[]).is_err());
        assert!(write_logits(&path, usize::MAX, 2, 2, &[], &[]).is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn row_out_of_range_panics() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("l.safetensors");
        write_logits(&path, 1, 1, 2, &[0.0; 2], &[0.0; 2]).unwrap();
        let _ = LogitsFile::open(&path).unwrap().row(Side::Decode, 0, 1);
    }
}
