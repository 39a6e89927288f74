//! Safetensors headers without loading the weights.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n` bytes of JSON (dtype,
//! shape and data offsets of every tensor), then the tensor data. Only the length and the JSON are
//! read (no mmap, so no `unsafe`); the `safetensors` crate validates the JSON (offsets contiguous,
//! sizes matching dtype × shape) and the file length must equal `8 + n + data`, so a truncated or
//! padded file is reported as corrupt just as `SafeTensors::deserialize` would.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::ModelError;

/// Largest header the `safetensors` crate accepts (100 MB).
const MAX_HEADER_SIZE: u64 = 100_000_000;

/// What a safetensors header says about its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Number of tensors.
    pub tensors: usize,
    /// Tensors per dtype name (`F32`, `BF16`, …).
    pub dtypes: BTreeMap<String, usize>,
    /// Total number of elements (parameters).
    pub parameters: u64,
    /// Bytes of tensor data.
    pub data_bytes: u64,
    /// Bytes of the JSON header.
    pub header_bytes: u64,
    /// The free-form `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

/// Parses a header from the file's first `8 + n` bytes (`prefix`) and the file's length.
pub fn parse_safetensors_header(prefix: &[u8], file_len: u64) -> Result<SafetensorsHeader, String> {
    let n = header_len(prefix, file_len)?;
    let json = prefix.get(8..8 + n as usize).ok_or_else(|| {
        format!(
            "the header needs {n} bytes but only {} were read",
            prefix.len().saturating_sub(8)
        )
    })?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(json).map_err(|e| format!("invalid header: {e}"))?;
    let data_bytes = meta.data_len() as u64;
    let expected = 8 + n + data_bytes;
    if expected != file_len {
        return Err(format!(
            "the header describes {data_bytes} bytes of tensor data, so the file should be {expected} bytes, \
             but it is {file_len} bytes (truncated or padded)"
        ));
    }
    let mut dtypes = BTreeMap::new();
    let mut parameters: u64 = 0;
    let infos = meta.tensors();
    for info in infos.values() {
        *dtypes.entry(format!("{:?}", info.dtype)).or_insert(0) += 1;
        let elements = info
            .shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d as u64))
            .ok_or("a tensor shape overflows")?;
        parameters = parameters
            .checked_add(elements)
            .ok_or("the parameter count overflows")?;
    }
    Ok(SafetensorsHeader {
        tensors: infos.len(),
        dtypes,
        parameters,
        data_bytes,
        header_bytes: n,
        metadata: meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
}

/// The header length from the first 8 bytes, checked against the file length and the crate's cap.
fn header_len(prefix: &[u8], file_len: u64) -> Result<u64, String> {
    let len_bytes: [u8; 8] = prefix
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("the file is {file_len} bytes, shorter than the 8-byte header length"))?;
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_SIZE {
        return Err(format!("the header length {n} is larger than the 100 MB limit"));
    }
    if 8 + n > file_len {
        return Err(format!(
            "the header length {n} runs past the end of the file ({file_len} bytes)"
        ));
    }
    Ok(n)
}

/// Reads and checks the header of a safetensors file (reads only `8 + n` bytes).
pub fn inspect_safetensors(path: &Path) -> Result<SafetensorsHeader, ModelError> {
    let corrupt = |detail: String| ModelError::Safetensors {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = File::open(path).map_err(|e| ModelError::io("open", path, e))?;
    let file_len = file.metadata().map_err(|e| ModelError::io("stat", path, e))?.len();
    let mut prefix = vec![0u8; 8.min(file_len) as usize];
    file.read_exact(&mut prefix)
        .map_err(|e| ModelError::io("read", path, e))?;
    let n = header_len(&prefix, file_len).map_err(corrupt)?;
    prefix.resize(8 + n as usize, 0);
    file.read_exact(&mut prefix[8..])
        .map_err(|e| ModelError::io("read", path, e))?;
    parse_safetensors_header(&prefix, file_len).map_err(corrupt)
}

/// Totals over the weight files of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightsSummary {
    /// Number of weight files (shards).
    pub files: usize,
    /// Their total size on disk.
    pub total_bytes: u64,
    /// Tensors, from the safetensors headers (`None` for PyTorch files).
    pub tensors: Option<usize>,
    /// Parameters, from the safetensors headers (`None` for PyTorch files).
    pub parameters: Option<u64>,
    /// Tensors per dtype over all files (empty for PyTorch files).
    pub dtypes: BTreeMap<String, usize>,
}

impl WeightsSummary {
    /// Sizes only (PyTorch files, or no inspection).
    pub fn sizes(files: &[PathBuf]) -> Result<WeightsSummary, ModelError> {
        let mut total = 0;
        for f in files {
            total += std::fs::metadata(f).map_err(|e| ModelError::io("stat", f, e))?.len();
        }
        Ok(WeightsSummary {
            files: files.len(),
            total_bytes: total,
            ..WeightsSummary::default()
        })
    }

    /// Sizes plus every file's safetensors header; a corrupt header is an error.
    pub fn inspect(files: &[PathBuf]) -> Result<WeightsSummary, ModelError> {
        let mut summary = WeightsSummary::sizes(files)?;
        let (mut tensors, mut parameters) = (0usize, 0u64);
        for f in files {
            let h = inspect_safetensors(f)?;
            tensors += h.tensors;
            parameters += h.parameters;
            for (dtype, count) in h.dtypes {
                *summary.dtypes.entry(dtype).or_insert(0) += count;
            }
        }
        summary.tensors = Some(tensors);
        summary.parameters = Some(parameters);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    const GOOD: &str = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}"#;

    #[test]
    fn header_totals() {
        let bytes = file(GOOD, 32);
        let h = parse_safetensors_header(&bytes, bytes.len() as u64).unwrap();
        assert_eq!(h.tensors, 2);
        assert_eq!(h.parameters, 10);
        assert_eq!(h.data_bytes, 32);
        assert_eq!(h.dtypes, BTreeMap::from([("BF16".into(), 1), ("F32".into(), 1)]));
        assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));

        // The crate itself agrees on the whole file.
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), h.tensors);
    }

    #[test]
    fn corrupt_headers() {
        let good = file(GOOD, 32);
        let truncated = &good[..good.len() - 1];
        let bad_offsets = file(r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, 20);
        let gap = file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8);
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut past_end = good.clone();
        past_end[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
        let not_json = file("{nope", 0);
        let bad_dtype = file(r#"{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}"#, 1);
        let cases: Vec<(&str, &[u8])> = vec![
            ("empty", &[]),
            ("short", &[1, 0, 0]),
            ("truncated data", truncated),
            ("offsets vs shape", &bad_offsets),
            ("gap", &gap),
            ("huge length", &huge),
            ("length past end", &past_end),
            ("not json", &not_json),
            ("bad dtype", &bad_dtype),
        ];
        for (name, bytes) in cases {
            let err = parse_safetensors_header(bytes, bytes.len() as u64).unwrap_err();
            assert!(!err.is_empty(), "{name}");
        }
        let err = parse_safetensors_header(truncated, truncated.len() as u64).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn inspect_reads_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        std::fs::write(&p, file(GOOD, 32)).unwrap();
        let h = inspect_safetensors(&p).unwrap();
        assert_eq!(h.parameters, 10);
        let s = WeightsSummary::inspect(&[p.clone(), p.clone()]).unwrap();
        assert_eq!((s.files, s.tensors, s.parameters), (2, Some(4), Some(20)));
        assert_eq!(s.total_bytes, 2 * std::fs::metadata(&p).unwrap().len());

        std::fs::write(&p, &file(GOOD, 32)[..40]).unwrap();
        let err = inspect_safetensors(&p).unwrap_err();
        assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
        assert!(err.to_string().contains("m.safetensors"), "{err}");
    }
}
