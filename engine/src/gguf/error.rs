//! Errors of the GGUF reader, writer and codecs.
//!
//! Reader errors name the file and the fault; writer errors raised before a path is known start
//! with "gguf writer" and name the key or tensor.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::gguf::types::GgmlType;

/// Any failure reading, checking or writing a GGUF file.
#[derive(Debug, Error)]
pub enum GgufError {
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{}: not a GGUF file (magic 0x46554747 expected, found 0x{found:08X})", .path.display())]
    BadMagic { path: PathBuf, found: u32 },

    #[error("{}: GGUF version {version} is not supported (supported: 2, 3){}", .path.display(), version_hint(*.version))]
    UnsupportedVersion { path: PathBuf, version: u32 },

    #[error("{}: file is truncated: {what} at byte {offset} needs {need} bytes, but the file has {file_len} bytes", .path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        need: u64,
        file_len: u64,
    },

    #[error("{}: {what} at byte {offset} is {count}, more entries than the {remaining} bytes left in the file can hold (the file is truncated or corrupt)", .path.display())]
    AbsurdCount {
        path: PathBuf,
        what: String,
        offset: u64,
        count: u64,
        remaining: u64,
    },

    #[error("{}: {what} at byte {offset} is not valid UTF-8", .path.display())]
    InvalidUtf8 {
        path: PathBuf,
        what: String,
        offset: u64,
    },

    #[error("{}: metadata key `{key}` has unknown value type {type_id} (at byte {offset})", .path.display())]
    UnknownValueType {
        path: PathBuf,
        key: String,
        type_id: u32,
        offset: u64,
    },

    #[error("{}: metadata key `{key}` holds a bool of value {value} (must be 0 or 1)", .path.display())]
    InvalidBool {
        path: PathBuf,
        key: String,
        value: u8,
    },

    #[error("{}: metadata key `{key}` nests arrays deeper than {max_depth} levels", .path.display())]
    NestingTooDeep {
        path: PathBuf,
        key: String,
        max_depth: usize,
    },

    #[error("{}: metadata key `{key}` appears twice", .path.display())]
    DuplicateKey { path: PathBuf, key: String },

    #[error("{}: general.alignment is {value}, which is not a power of two in 1..=2^31", .path.display())]
    InvalidAlignment { path: PathBuf, value: String },

    #[error("{}: metadata key `{key}` is missing", .path.display())]
    MissingKey { path: PathBuf, key: String },

    #[error("{}: metadata key `{key}` is {found}, expected {expected}", .path.display())]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("{}: metadata key `{key}` holds {value}, which does not fit in {target}", .path.display())]
    ValueOutOfRange {
        path: PathBuf,
        key: String,
        value: String,
        target: &'static str,
    },

    #[error("{}: tensor `{tensor}` appears twice", .path.display())]
    DuplicateTensor { path: PathBuf, tensor: String },

    #[error("{}: tensor `{tensor}` has {n_dims} dimensions (at most 4)", .path.display())]
    TooManyDims {
        path: PathBuf,
        tensor: String,
        n_dims: u32,
    },

    #[error("{}: tensor `{tensor}` has dimensions {dims:?}, whose element count overflows", .path.display())]
    ElementCountOverflow {
        path: PathBuf,
        tensor: String,
        dims: Vec<u64>,
    },

    #[error("{}: tensor `{tensor}` has ggml type {type_id}{}, whose layout this reader does not know", .path.display(), type_name_suffix(*.type_name))]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
        type_name: Option<&'static str>,
    },

    #[error("{}: tensor `{tensor}` of type {ggml_type} has dims[0] = {dim0}, not a multiple of the block size {block_size}", .path.display())]
    NotBlockMultiple {
        path: PathBuf,
        tensor: String,
        ggml_type: GgmlType,
        dim0: u64,
        block_size: usize,
    },

    #[error("{}: tensor `{tensor}` has offset {offset}, not a multiple of the alignment {alignment}", .path.display())]
    MisalignedOffset {
        path: PathBuf,
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("{}: tensor `{tensor}` at offset {offset} of {n_bytes} bytes overflows a 64-bit file position", .path.display())]
    OffsetOverflow {
        path: PathBuf,
        tensor: String,
        offset: u64,
        n_bytes: u64,
    },

    #[error("{}: tensor `{tensor}` ends at byte {end}, past the end of the file ({file_len} bytes)", .path.display())]
    TensorPastEnd {
        path: PathBuf,
        tensor: String,
        end: u64,
        file_len: u64,
    },

    #[error("{}: no tensor named `{tensor}`", .path.display())]
    TensorNotFound { path: PathBuf, tensor: String },

    #[error("{}: tensor `{tensor}` has type {type_name} ({type_id}), which this engine does not dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)", .path.display())]
    UnsupportedTensorType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
        type_name: &'static str,
    },

    // Writer faults, raised while building a file (before any path is known).
    #[error("gguf writer: metadata key `{key}` added twice")]
    WriterDuplicateKey { key: String },

    #[error("gguf writer: tensor `{tensor}` added twice")]
    WriterDuplicateTensor { tensor: String },

    #[error("gguf writer: general.alignment {value} is not a u32 power of two")]
    WriterInvalidAlignment { value: String },

    #[error("gguf writer: tensor `{tensor}` has {n_dims} dimensions (at most 4)")]
    WriterTooManyDims { tensor: String, n_dims: usize },

    #[error("gguf writer: tensor `{tensor}` has dims {dims:?} ({expected} elements) but {found} values were given")]
    WriterShapeMismatch {
        tensor: String,
        dims: Vec<u64>,
        expected: String,
        found: usize,
    },

    #[error("gguf writer: tensor `{tensor}` of type {ggml_type} has dims {dims:?}: {expected} bytes expected, {found} given")]
    WriterByteCountMismatch {
        tensor: String,
        ggml_type: GgmlType,
        dims: Vec<u64>,
        expected: String,
        found: usize,
    },

    #[error("gguf writer: tensor `{tensor}`: {source}")]
    WriterQuantize {
        tensor: String,
        #[source]
        source: QuantizeError,
    },
}

impl GgufError {
    /// The file the error is about, when one is known.
    pub fn path(&self) -> Option<&Path> {
        use GgufError::*;
        match self {
            Io { path, .. }
            | BadMagic { path, .. }
            | UnsupportedVersion { path, .. }
            | Truncated { path, .. }
            | AbsurdCount { path, .. }
            | InvalidUtf8 { path, .. }
            | UnknownValueType { path, .. }
            | InvalidBool { path, .. }
            | NestingTooDeep { path, .. }
            | DuplicateKey { path, .. }
            | InvalidAlignment { path, .. }
            | MissingKey { path, .. }
            | WrongType { path, .. }
            | ValueOutOfRange { path, .. }
            | DuplicateTensor { path, .. }
            | TooManyDims { path, .. }
            | ElementCountOverflow { path, .. }
            | UnknownTensorType { path, .. }
            | NotBlockMultiple { path, .. }
            | MisalignedOffset { path, .. }
            | OffsetOverflow { path, .. }
            | TensorPastEnd { path, .. }
            | TensorNotFound { path, .. }
            | UnsupportedTensorType { path, .. } => Some(path),
            WriterDuplicateKey { .. }
            | WriterDuplicateTensor { .. }
            | WriterInvalidAlignment { .. }
            | WriterTooManyDims { .. }
            | WriterShapeMismatch { .. }
            | WriterByteCountMismatch { .. }
            | WriterQuantize { .. } => None,
        }
    }
}

/// Why a block of values could not be dequantised (no file context: the reader adds it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DequantError {
    #[error("type {0} ({id}) is not dequantised (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)", id = .0.id())]
    Unsupported(GgmlType),
    #[error("{n_bytes} bytes of {ggml_type} cannot fill {n_values} values")]
    LengthMismatch {
        ggml_type: GgmlType,
        n_bytes: usize,
        n_values: usize,
    },
}

/// Why values could not be quantised (no tensor context: the writer adds it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantizeError {
    #[error("quantising to {0} ({id}) is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)", id = .0.id())]
    Unsupported(GgmlType),
    #[error("{len} values are not a whole number of {ggml_type} blocks of {block_size}")]
    NotBlockMultiple {
        ggml_type: GgmlType,
        len: usize,
        block_size: usize,
    },
}

/// `Result` with [`GgufError`] as the default error.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// A byte-swapped version 2 or 3 means a big-endian file; say so instead of a bare number.
fn version_hint(version: u32) -> &'static str {
    match version.swap_bytes() {
        2 | 3 => " (this looks like a big-endian GGUF file; only little-endian is read)",
        _ => "",
    }
}

fn type_name_suffix(name: Option<&'static str>) -> String {
    name.map(|n| format!(" ({n})")).unwrap_or_default()
}
