//! Small generated models: valid safetensors files and a sharded checkpoint with its index.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Bytes per element of the dtypes the fixtures use.
fn dtype_size(dtype: &str) -> usize {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        _ => 1,
    }
}

/// A valid safetensors file holding `tensors` (name, dtype, shape); element bytes are a fixed pattern.
pub fn safetensors_file(tensors: &[(&str, &str, &[usize])]) -> Bytes {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, dtype, shape) in tensors {
        let size = shape.iter().product::<usize>() * dtype_size(dtype);
        header.insert(
            (*name).to_owned(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
    }
    let mut text = Value::Object(header).to_string();
    // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
    let pad = (8 - text.len() % 8) % 8;
    text.push_str(&" ".repeat(pad));
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend((0..offset).map(|i| (i % 251) as u8));
    Bytes::from(out)
}

/// Name of shard `i` (1-based) of `n`: `model-0000i-of-0000n.safetensors`.
pub fn shard_name(i: usize, n: usize) -> String {
    format!("model-{i:05}-of-{n:05}.safetensors")
}

/// A small BERT-like model sharded in 3 safetensors files plus `model.safetensors.index.json`,
/// with config, generation config and tokenizer files. The tensors: 4 per shard, 12 in all,
/// F32 and F16, 3 × (16·8 + 8 + 8·4 + 4) = 516 parameters.
pub fn sharded_model() -> Vec<(String, Bytes)> {
    let n = 3;
    let mut files = Vec::new();
    let mut weight_map = Map::new();
    let mut total = 0usize;
    for i in 1..=n {
        let layer = i - 1;
        let names = [
            format!("encoder.layer.{layer}.dense.weight"),
            format!("encoder.layer.{layer}.dense.bias"),
            format!("encoder.layer.{layer}.out.weight"),
            format!("encoder.layer.{layer}.out.bias"),
        ];
        let specs: [(&str, &str, &[usize]); 4] = [
            (&names[0], "F32", &[16, 8]),
            (&names[1], "F32", &[8]),
            (&names[2], "F16", &[8, 4]),
            (&names[3], "F16", &[4]),
        ];
        let bytes = safetensors_file(&specs);
        for name in &names {
            weight_map.insert(name.clone(), json!(shard_name(i, n)));
        }
        total += 16 * 8 * 4 + 8 * 4 + 8 * 4 * 2 + 4 * 2;
        files.push((shard_name(i, n), bytes));
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    files.push((
        "model.safetensors.index.json".into(),
        Bytes::from(serde_json::to_vec_pretty(&index).unwrap_or_default()),
    ));
    files.push((
        "config.json".into(),
        Bytes::from_static(br#"{"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 3}"#),
    ));
    files.push((
        "generation_config.json".into(),
        Bytes::from_static(br#"{"max_length": 32}"#),
    ));
    files.push((
        "tokenizer_config.json".into(),
        Bytes::from_static(br#"{"model_max_length": 32}"#),
    ));
    files.push(("vocab.txt".into(), Bytes::from_static(b"[PAD]\n[UNK]\nhello\nworld\n")));
    files.push(("README.md".into(), Bytes::from_static(b"# tiny sharded model\n")));
    files
}
