//! GGUF v2/v3: a checked, memory-mapped reader ([`GgufFile`]), a byte-stable v3 writer
//! ([`GgufWriter`]), and ggml-exact codecs for F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
//!
//! Dims are in GGUF order (dims[0] fastest), the reverse of PyTorch's shape.

pub mod dequant;
pub mod error;
pub mod quantize;
pub mod reader;
pub mod types;
pub mod writer;

#[cfg(test)]
mod tests;

pub use error::{DequantError, GgufError, QuantizeError, Result};
pub use reader::{GgufFile, DEFAULT_ALIGNMENT, GGUF_MAGIC};
pub use types::{ggml_type_name, GgmlType, MetaArray, MetaValue, TensorInfo, ValueType};
pub use writer::GgufWriter;
