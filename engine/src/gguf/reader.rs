//! GGUF v2/v3 reader: parses and checks the header of a memory-mapped file and hands out
//! metadata and tensor data.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::gguf::dequant;
use crate::gguf::error::{DequantError, GgufError, Result};
use crate::gguf::types::{ggml_type_name, GgmlType, MetaArray, MetaValue, TensorInfo, ValueType};

/// `GGUF` read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Alignment of the data section and of tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Array nesting beyond this is refused: real files nest at most once, and unbounded recursion
/// on hostile input would overflow the stack.
const MAX_ARRAY_DEPTH: usize = 16;
/// A tensor info takes at least a name length, n_dims, type and offset.
const MIN_TENSOR_INFO_SIZE: usize = 8 + 4 + 4 + 8;
/// A key/value pair takes at least a key length, a value type and a one-byte value.
const MIN_KV_SIZE: usize = 8 + 4 + 1;

/// The file's bytes: mapped (model files are gigabytes) or owned (tests, empty files, which
/// cannot be mapped on every platform).
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An open, checked GGUF file. Every tensor lies inside the file, so data accessors only fail on
/// names and types.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    key_index: BTreeMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: BTreeMap<String, usize>,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Map and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let io_err = |action, source| GgufError::Io {
            path: path.clone(),
            action,
            source,
        };
        let file = File::open(&path).map_err(|e| io_err("cannot open", e))?;
        let len = file.metadata().map_err(|e| io_err("cannot stat", e))?.len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only; as with any mmap, another process truncating or
            // rewriting the file while it is open is undefined behaviour, which model files
            // (written once, then read) do not suffer.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err("cannot map", e))?;
            Storage::Mapped(map)
        };
        GgufFile::parse(path, storage)
    }

    /// Parse a GGUF image held in memory; `path` only names it in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::parse(path.into(), Storage::Owned(bytes))
    }

    fn parse(path: PathBuf, storage: Storage) -> Result<GgufFile> {
        let header = Parser::new(&path, storage.bytes()).header()?;
        Ok(GgufFile {
            path,
            storage,
            version: header.version,
            alignment: header.alignment,
            metadata: header.metadata,
            key_index: header.key_index,
            tensors: header.tensors,
            tensor_index: header.tensor_index,
            data_offset: header.data_offset,
        })
    }

    /// The path given to [`GgufFile::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and tensor offsets (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte position of the data section (tensor offsets are relative to it).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// File size in bytes.
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        let i = *self.key_index.get(key)?;
        self.metadata.get(i).map(|(_, v)| v)
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor's info.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        let i = *self.tensor_index.get(name)?;
        self.tensors.get(i)
    }

    /// One tensor's info, or an error naming the file and the tensor.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound {
                path: self.path.clone(),
                tensor: name.to_owned(),
            })
    }

    /// The tensor's raw bytes as stored (quantised blocks, little-endian values).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor(name)?;
        self.bytes_of(info)
    }

    /// The bytes of a tensor of this file.
    pub fn bytes_of(&self, info: &TensorInfo) -> Result<&[u8]> {
        // open() checked these bounds; they are re-checked rather than trusted with a panic.
        let past_end = || GgufError::TensorPastEnd {
            path: self.path.clone(),
            tensor: info.name.clone(),
            end: self
                .data_offset
                .saturating_add(info.offset)
                .saturating_add(info.n_bytes),
            file_len: self.file_len(),
        };
        let start = self
            .data_offset
            .checked_add(info.offset)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(past_end)?;
        let len = usize::try_from(info.n_bytes).map_err(|_| past_end())?;
        let end = start.checked_add(len).ok_or_else(past_end)?;
        self.storage.bytes().get(start..end).ok_or_else(past_end)
    }

    /// The tensor dequantised to f32, row-major with dims[0] fastest (so a torch [out, in]
    /// weight comes out as `out` rows of `in` values).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensor(name)?;
        let unsupported = || GgufError::UnsupportedTensorType {
            path: self.path.clone(),
            tensor: info.name.clone(),
            type_id: info.ggml_type.id(),
            type_name: info.ggml_type.name(),
        };
        if !info.ggml_type.is_dequantisable() {
            return Err(unsupported());
        }
        let bytes = self.bytes_of(info)?;
        // n_elements <= 32/18 * n_bytes of a mapped file, so this only fails on 32-bit hosts.
        let n = usize::try_from(info.n_elements).map_err(|_| GgufError::ElementCountOverflow {
            path: self.path.clone(),
            tensor: info.name.clone(),
            dims: info.dims.clone(),
        })?;
        let mut out = vec![0.0f32; n];
        dequant::dequantize_into(info.ggml_type, bytes, &mut out).map_err(|e| match e {
            DequantError::Unsupported(_) => unsupported(),
            // Sizes were derived from the dims at open(); a mismatch is a bug, reported as
            // the tensor overrunning rather than a panic.
            DequantError::LengthMismatch { .. } => GgufError::TensorPastEnd {
                path: self.path.clone(),
                tensor: info.name.clone(),
                end: self.data_offset.saturating_add(info.offset),
                file_len: self.file_len(),
            },
        })?;
        Ok(out)
    }

    fn missing(&self, key: &str) -> GgufError {
        GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_owned(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &MetaValue) -> GgufError {
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_owned(),
            expected,
            found: found.type_description(),
        }
    }

    fn out_of_range(&self, key: &str, value: String, target: &'static str) -> GgufError {
        GgufError::ValueOutOfRange {
            path: self.path.clone(),
            key: key.to_owned(),
            value,
            target,
        }
    }

    fn int_opt<T: TryFrom<i128>>(&self, key: &str, target: &'static str) -> Result<Option<T>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v
            .as_integer()
            .ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        T::try_from(i)
            .map(Some)
            .map_err(|_| self.out_of_range(key, i.to_string(), target))
    }

    fn int_array_opt<T: TryFrom<i128>>(
        &self,
        key: &str,
        target: &'static str,
    ) -> Result<Option<Vec<T>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let ints = v
            .as_array()
            .and_then(MetaArray::integers)
            .ok_or_else(|| self.wrong_type(key, "an array of integers", v))?;
        ints.into_iter()
            .enumerate()
            .map(|(i, x)| {
                T::try_from(x)
                    .map_err(|_| self.out_of_range(key, format!("element {i} = {x}"), target))
            })
            .collect::<Result<Vec<T>>>()
            .map(Some)
    }

    /// An integer key of any width whose value fits in u32; `None` when absent.
    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.int_opt(key, "u32")
    }

    /// An integer key of any width whose value fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_u32_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// An integer key of any width whose value fits in u64; `None` when absent.
    pub fn get_u64_opt(&self, key: &str) -> Result<Option<u64>> {
        self.int_opt(key, "u64")
    }

    /// An integer key of any width whose value fits in u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_u64_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// An integer key of any width whose value fits in i64; `None` when absent.
    pub fn get_i64_opt(&self, key: &str) -> Result<Option<i64>> {
        self.int_opt(key, "i64")
    }

    /// An integer key of any width whose value fits in i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_i64_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// An f32 or f64 key as f32 (f64 rounds to nearest; a finite f64 beyond f32's range is an
    /// error); `None` when absent.
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::F32(x)) => Ok(Some(*x)),
            Some(MetaValue::F64(x)) => {
                let y = *x as f32;
                if y.is_infinite() && x.is_finite() {
                    return Err(self.out_of_range(key, x.to_string(), "f32"));
                }
                Ok(Some(y))
            }
            Some(v) => Err(self.wrong_type(key, "f32 or f64", v)),
        }
    }

    /// An f32 or f64 key as f32 (f64 rounds to nearest).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_f32_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// A bool key; `None` when absent.
    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "bool", v)),
        }
    }

    /// A bool key.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.get_bool_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string key; `None` when absent.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "string", v)),
        }
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get_str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// An array-of-strings key; `None` when absent.
    pub fn get_str_array_opt(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(MetaArray::String(s))) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "an array of string", v)),
        }
    }

    /// An array-of-strings key.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        self.get_str_array_opt(key)?
            .ok_or_else(|| self.missing(key))
    }

    /// An array of f32 or f64 as f32 (f64 rounds to nearest); `None` when absent.
    pub fn get_f32_array_opt(&self, key: &str) -> Result<Option<Vec<f32>>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(MetaArray::F32(v))) => Ok(Some(v.clone())),
            Some(MetaValue::Array(MetaArray::F64(v))) => {
                Ok(Some(v.iter().map(|&x| x as f32).collect()))
            }
            Some(v) => Err(self.wrong_type(key, "an array of f32 or f64", v)),
        }
    }

    /// An array of f32 or f64 as f32 (f64 rounds to nearest).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get_f32_array_opt(key)?
            .ok_or_else(|| self.missing(key))
    }

    /// An array of integers of any width whose elements fit in i32; `None` when absent.
    pub fn get_i32_array_opt(&self, key: &str) -> Result<Option<Vec<i32>>> {
        self.int_array_opt(key, "i32")
    }

    /// An array of integers of any width whose elements fit in i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.get_i32_array_opt(key)?
            .ok_or_else(|| self.missing(key))
    }

    /// An array of integers of any width whose elements fit in u32; `None` when absent.
    pub fn get_u32_array_opt(&self, key: &str) -> Result<Option<Vec<u32>>> {
        self.int_array_opt(key, "u32")
    }

    /// An array of integers of any width whose elements fit in u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.get_u32_array_opt(key)?
            .ok_or_else(|| self.missing(key))
    }
}

/// What the header parse produces.
struct Header {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    key_index: BTreeMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: BTreeMap<String, usize>,
    data_offset: u64,
}

/// A bounds-checked cursor over the file's bytes.
struct Parser<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    /// What is being read, for truncation messages; set once per key or tensor, not per read.
    what: String,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path, data: &'a [u8]) -> Parser<'a> {
        Parser {
            path,
            data,
            pos: 0,
            what: String::from("header"),
        }
    }

    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(GgufError::Truncated {
                path: self.path(),
                what: self.what.clone(),
                offset: self.pos as u64,
                need: n as u64,
                file_len: self.data.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        // take() returned exactly N bytes.
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A u64 count of items of at least `min_size` bytes each, refused when the rest of the
    /// file could not hold them, so that counts never drive allocations beyond the file size.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let offset = self.pos as u64;
        let count = self.u64()?;
        self.check_count(count, min_size, offset)
    }

    fn check_count(&self, count: u64, min_size: usize, offset: u64) -> Result<usize> {
        let remaining = self.remaining();
        usize::try_from(count)
            .ok()
            .filter(|&n| n.checked_mul(min_size).is_some_and(|b| b <= remaining))
            .ok_or_else(|| GgufError::AbsurdCount {
                path: self.path(),
                what: self.what.clone(),
                offset,
                count,
                remaining: remaining as u64,
            })
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        let offset = self.pos as u64;
        // take() checks the length against the file before anything is allocated.
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                path: self.path(),
                what: format!("string in {}", self.what),
                offset,
            }),
        }
    }

    fn header(mut self) -> Result<Header> {
        let magic_bytes = self.data.get(..4).unwrap_or(self.data);
        let mut magic = [0u8; 4];
        magic.iter_mut().zip(magic_bytes).for_each(|(m, &b)| *m = b);
        let found = u32::from_le_bytes(magic);
        if found != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                path: self.path(),
                found,
            });
        }
        self.what = "magic".into();
        self.u32()?;
        self.what = "version".into();
        let version = self.u32()?;
        if !matches!(version, 2 | 3) {
            return Err(GgufError::UnsupportedVersion {
                path: self.path(),
                version,
            });
        }
        self.what = "tensor count".into();
        let n_tensors = self.u64()?;
        self.what = "metadata count".into();
        let n_kv = self.count(MIN_KV_SIZE)?;

        let mut metadata = Vec::with_capacity(n_kv);
        let mut key_index = BTreeMap::new();
        for i in 0..n_kv {
            self.what = format!("metadata key #{i}");
            let key = self.string()?;
            self.what = format!("value of metadata key `{key}`");
            let type_offset = self.pos as u64;
            let type_id = self.u32()?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                path: self.path(),
                key: key.clone(),
                type_id,
                offset: type_offset,
            })?;
            let value = self.value(ty, &key, 0)?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey {
                    path: self.path(),
                    key,
                });
            }
            metadata.push((key, value));
        }

        let alignment = match key_index
            .get("general.alignment")
            .and_then(|&i| metadata.get(i))
        {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => self.alignment(v)?,
        };

        self.what = "tensor count".into();
        // Checked here, against what the metadata left; it sits after the magic and version.
        let n_tensors = self.check_count(n_tensors, MIN_TENSOR_INFO_SIZE, 8)?;
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = BTreeMap::new();
        for i in 0..n_tensors {
            self.what = format!("tensor info #{i}");
            let info = self.tensor_info(alignment)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(GgufError::DuplicateTensor {
                    path: self.path(),
                    tensor: info.name,
                });
            }
            tensors.push(info);
        }

        // The data section starts at the next multiple of the alignment (a power of two).
        let header_end = self.pos as u64;
        let data_offset = header_end
            .checked_next_multiple_of(alignment)
            .unwrap_or(u64::MAX);
        let file_len = self.data.len() as u64;
        for t in &tensors {
            let overflow = || GgufError::OffsetOverflow {
                path: self.path(),
                tensor: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
            };
            let start = data_offset.checked_add(t.offset).ok_or_else(overflow)?;
            let end = start.checked_add(t.n_bytes).ok_or_else(overflow)?;
            if end > file_len {
                return Err(GgufError::TensorPastEnd {
                    path: self.path(),
                    tensor: t.name.clone(),
                    end,
                    file_len,
                });
            }
        }

        Ok(Header {
            version,
            alignment,
            metadata,
            key_index,
            tensors,
            tensor_index,
            data_offset,
        })
    }

    fn alignment(&self, v: &MetaValue) -> Result<u64> {
        let Some(a) = v.as_integer() else {
            return Err(GgufError::WrongType {
                path: self.path(),
                key: "general.alignment".into(),
                expected: "u32",
                found: v.type_description(),
            });
        };
        u32::try_from(a)
            .ok()
            .filter(|a| a.is_power_of_two())
            .map(u64::from)
            .ok_or_else(|| GgufError::InvalidAlignment {
                path: self.path(),
                value: a.to_string(),
            })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(u8::from_le_bytes(self.array()?)),
            ValueType::I8 => MetaValue::I8(i8::from_le_bytes(self.array()?)),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.array()?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.array()?)),
            ValueType::U32 => MetaValue::U32(u32::from_le_bytes(self.array()?)),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.array()?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.array()?)),
            ValueType::Bool => MetaValue::Bool(self.bool(key)?),
            ValueType::String => MetaValue::String(self.string()?),
            ValueType::Array => MetaValue::Array(self.meta_array(key, depth)?),
            ValueType::U64 => MetaValue::U64(u64::from_le_bytes(self.array()?)),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.array()?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.array()?)),
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool> {
        match u8::from_le_bytes(self.array()?) {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool {
                path: self.path(),
                key: key.to_owned(),
                value,
            }),
        }
    }

    /// `count` fixed-size elements decoded with `f` from one bounds-checked slice.
    fn fixed<const N: usize, T>(&mut self, count: usize, f: fn([u8; N]) -> T) -> Result<Vec<T>> {
        // count() guaranteed count * min_size (== N) fits in the remaining bytes.
        let bytes = self.take(count.saturating_mul(N))?;
        Ok(bytes
            .chunks_exact(N)
            .filter_map(|c| <[u8; N]>::try_from(c).ok())
            .map(f)
            .collect())
    }

    fn meta_array(&mut self, key: &str, depth: usize) -> Result<MetaArray> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                path: self.path(),
                key: key.to_owned(),
                max_depth: MAX_ARRAY_DEPTH,
            });
        }
        let type_offset = self.pos as u64;
        let type_id = self.u32()?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path(),
            key: key.to_owned(),
            type_id,
            offset: type_offset,
        })?;
        let n = self.count(ty.min_size())?;
        Ok(match ty {
            ValueType::U8 => MetaArray::U8(self.fixed(n, u8::from_le_bytes)?),
            ValueType::I8 => MetaArray::I8(self.fixed(n, i8::from_le_bytes)?),
            ValueType::U16 => MetaArray::U16(self.fixed(n, u16::from_le_bytes)?),
            ValueType::I16 => MetaArray::I16(self.fixed(n, i16::from_le_bytes)?),
            ValueType::U32 => MetaArray::U32(self.fixed(n, u32::from_le_bytes)?),
            ValueType::I32 => MetaArray::I32(self.fixed(n, i32::from_le_bytes)?),
            ValueType::F32 => MetaArray::F32(self.fixed(n, f32::from_le_bytes)?),
            ValueType::U64 => MetaArray::U64(self.fixed(n, u64::from_le_bytes)?),
            ValueType::I64 => MetaArray::I64(self.fixed(n, i64::from_le_bytes)?),
            ValueType::F64 => MetaArray::F64(self.fixed(n, f64::from_le_bytes)?),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                MetaArray::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string()?);
                }
                MetaArray::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.meta_array(key, depth + 1)?);
                }
                MetaArray::Array(v)
            }
        })
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo> {
        let name = self.string()?;
        self.what = format!("tensor info of `{name}`");
        let n_dims = self.u32()?;
        if n_dims > 4 {
            return Err(GgufError::TooManyDims {
                path: self.path(),
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(4);
        for _ in 0..n_dims {
            dims.push(self.u64()?);
        }
        let type_id = self.u32()?;
        let offset = self.u64()?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(GgufError::UnknownTensorType {
                path: self.path(),
                tensor: name,
                type_id,
                type_name: ggml_type_name(type_id),
            });
        };
        let Some(n_elements) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
            return Err(GgufError::ElementCountOverflow {
                path: self.path(),
                tensor: name,
                dims,
            });
        };
        let dim0 = dims.first().copied().unwrap_or(1);
        let block_size = ggml_type.block_size();
        if dim0 % block_size as u64 != 0 {
            return Err(GgufError::NotBlockMultiple {
                path: self.path(),
                tensor: name,
                ggml_type,
                dim0,
                block_size,
            });
        }
        let Some(n_bytes) = ggml_type.tensor_bytes(&dims) else {
            return Err(GgufError::ElementCountOverflow {
                path: self.path(),
                tensor: name,
                dims,
            });
        };
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                path: self.path(),
                tensor: name,
                offset,
                alignment,
            });
        }
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}
