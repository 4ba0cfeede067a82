//! GGUF v3 writer. Output depends only on what was added and in which order (no maps iterated,
//! no timestamps), so goldens can pin its bytes.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gguf::error::{GgufError, Result};
use crate::gguf::quantize;
use crate::gguf::reader::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::gguf::types::{GgmlType, MetaArray, MetaValue};

const ALIGNMENT_KEY: &str = "general.alignment";

/// A tensor ready to write: its bytes are already encoded in the target type.
#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF v3 file: metadata and tensors in insertion order, each tensor's data aligned.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    keys: BTreeSet<String>,
    tensors: Vec<PendingTensor>,
    names: BTreeSet<String>,
    alignment: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// An empty file with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            metadata: Vec::new(),
            keys: BTreeSet::new(),
            tensors: Vec::new(),
            names: BTreeSet::new(),
            alignment: DEFAULT_ALIGNMENT,
        }
    }

    /// The alignment the file will use.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Use `alignment` (a power of two) for the data section; anything but the default 32 is
    /// recorded as `general.alignment` (u32), where that key was added or would be appended.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        if !alignment.is_power_of_two() {
            return Err(GgufError::WriterInvalidAlignment {
                value: alignment.to_string(),
            });
        }
        self.alignment = u64::from(alignment);
        let existing = self.metadata.iter().position(|(k, _)| k == ALIGNMENT_KEY);
        match (existing, u64::from(alignment) == DEFAULT_ALIGNMENT) {
            (Some(i), true) => {
                self.metadata.remove(i);
                self.keys.remove(ALIGNMENT_KEY);
            }
            (Some(i), false) => {
                if let Some((_, v)) = self.metadata.get_mut(i) {
                    *v = MetaValue::U32(alignment);
                }
            }
            (None, true) => {}
            (None, false) => {
                self.keys.insert(ALIGNMENT_KEY.to_owned());
                self.metadata
                    .push((ALIGNMENT_KEY.to_owned(), MetaValue::U32(alignment)));
            }
        }
        Ok(())
    }

    /// Add a metadata key. `general.alignment` must be a u32 power of two and also sets the
    /// alignment.
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<MetaValue>,
    ) -> Result<()> {
        let key = key.into();
        let value = value.into();
        if self.keys.contains(&key) {
            return Err(GgufError::WriterDuplicateKey { key });
        }
        if key == ALIGNMENT_KEY {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => self.alignment = u64::from(a),
                ref other => {
                    return Err(GgufError::WriterInvalidAlignment {
                        value: format!("{other:?}"),
                    })
                }
            }
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Add a tensor from f32 values (row-major, dims[0] fastest, i.e. dims are the reverse of
    /// PyTorch's shape), stored as `ggml_type` using ggml's reference quantisers.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        data: &[f32],
        ggml_type: GgmlType,
    ) -> Result<()> {
        let name = self.check_tensor(name.into(), dims)?;
        let n_elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if n_elements != Some(data.len() as u64) {
            return Err(GgufError::WriterShapeMismatch {
                tensor: name,
                dims: dims.to_vec(),
                expected: n_elements.map_or_else(|| "overflowing".into(), |n| n.to_string()),
                found: data.len(),
            });
        }
        let dim0 = dims.first().copied().unwrap_or(1);
        if dim0 % ggml_type.block_size() as u64 != 0 {
            return Err(GgufError::WriterQuantize {
                tensor: name,
                source: crate::gguf::error::QuantizeError::NotBlockMultiple {
                    ggml_type,
                    len: usize::try_from(dim0).unwrap_or(usize::MAX),
                    block_size: ggml_type.block_size(),
                },
            });
        }
        let data =
            quantize::quantize(ggml_type, data).map_err(|source| GgufError::WriterQuantize {
                tensor: name.clone(),
                source,
            })?;
        self.push_tensor(name, dims, ggml_type, data);
        Ok(())
    }

    /// Add a tensor whose bytes are already encoded as `ggml_type` (any known type).
    pub fn add_tensor_raw(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<()> {
        let name = self.check_tensor(name.into(), dims)?;
        let expected = ggml_type.tensor_bytes(dims);
        if expected != Some(data.len() as u64) {
            return Err(GgufError::WriterByteCountMismatch {
                tensor: name,
                ggml_type,
                dims: dims.to_vec(),
                expected: expected.map_or_else(
                    || format!("dims[0] a multiple of {}, so no", ggml_type.block_size()),
                    |n| n.to_string(),
                ),
                found: data.len(),
            });
        }
        self.push_tensor(name, dims, ggml_type, data);
        Ok(())
    }

    fn check_tensor(&self, name: String, dims: &[u64]) -> Result<String> {
        if self.names.contains(&name) {
            return Err(GgufError::WriterDuplicateTensor { tensor: name });
        }
        if dims.len() > 4 {
            return Err(GgufError::WriterTooManyDims {
                tensor: name,
                n_dims: dims.len(),
            });
        }
        Ok(name)
    }

    fn push_tensor(&mut self, name: String, dims: &[u64], ggml_type: GgmlType, data: Vec<u8>) {
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ggml_type,
            data,
        });
    }

    /// Zero bytes that bring `len` to the next multiple of the alignment.
    fn padding(&self, len: u64) -> usize {
        // alignment is a power of two <= 2^31, so the result is below it.
        let rem = len % self.alignment;
        if rem == 0 {
            0
        } else {
            (self.alignment - rem) as usize
        }
    }

    /// Everything before the data section, padding included.
    fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(GGUF_MAGIC.to_le_bytes());
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            out.extend(value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ggml_type.id().to_le_bytes());
            out.extend(offset.to_le_bytes());
            let len = t.data.len() as u64;
            offset += len + self.padding(len) as u64;
        }
        out.resize(out.len() + self.padding(out.len() as u64), 0);
        out
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            out.resize(out.len() + self.padding(t.data.len() as u64), 0);
        }
        out
    }

    /// Write the file to `path` atomically: a temporary file in the same directory, synced, then
    /// renamed over `path`, so readers never see a partial file.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = temp_path(path);
        let result = self.write_file(&tmp).and_then(|()| {
            fs::rename(&tmp, path).map_err(|source| GgufError::Io {
                path: path.to_path_buf(),
                action: "cannot move the temporary file into place",
                source,
            })
        });
        if result.is_err() {
            // Best effort: the error being returned matters more than a leftover temp file.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_file(&self, tmp: &Path) -> Result<()> {
        let io_err = |action| {
            let path = tmp.to_path_buf();
            move |source| GgufError::Io {
                path,
                action,
                source,
            }
        };
        let file = File::create(tmp).map_err(io_err("cannot create"))?;
        let mut w = BufWriter::new(file);
        w.write_all(&self.header())
            .map_err(io_err("cannot write"))?;
        for t in &self.tensors {
            let pad = vec![0u8; self.padding(t.data.len() as u64)];
            w.write_all(&t.data).map_err(io_err("cannot write"))?;
            w.write_all(&pad).map_err(io_err("cannot write"))?;
        }
        let file = w
            .into_inner()
            .map_err(|e| io_err("cannot write")(e.into_error()))?;
        file.sync_all().map_err(io_err("cannot sync"))
    }
}

/// A temporary name beside `path`, unique within this process and across processes.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gguf".into());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A value's payload (its type id is written by the caller: kvs have one, array elements don't).
fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.extend(x.to_le_bytes()),
        MetaValue::I8(x) => out.extend(x.to_le_bytes()),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(a) => put_array(out, a),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// An array: element type, count, then the elements' payloads (nested arrays repeat this).
fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend(a.elem_type().id().to_le_bytes());
    out.extend((a.len() as u64).to_le_bytes());
    match a {
        MetaArray::U8(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::I8(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::U16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::I16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::U32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::Bool(v) => v.iter().for_each(|&x| out.push(u8::from(x))),
        MetaArray::String(v) => v.iter().for_each(|s| put_str(out, s)),
        MetaArray::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
        MetaArray::U64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        MetaArray::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
    }
}
