//! Weight files as `from_pretrained` finds them (`_get_resolved_checkpoint_files`,
//! `get_checkpoint_shard_files`).
//!
//! The naming rules (variants, candidate order, explicit names) and the index parsing are pure
//! and unit-tested here; [`ModelLoader::weights`] walks the candidates with `cached_file` (missing
//! and gated tolerated, so `.no_exist` makes each miss free on the next load) and fetches the
//! shards of a sharded checkpoint as one snapshot with exact-name patterns.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::ModelError;
use super::{ModelLoader, ModelSource, Tolerate};
use crate::cache::layout::join_repo_path;
use crate::error::Error;
use crate::repo::RepoPath;

/// Single-file safetensors weights.
pub const SAFE_WEIGHTS_NAME: &str = "model.safetensors";
/// Index of sharded safetensors weights.
pub const SAFE_WEIGHTS_INDEX_NAME: &str = "model.safetensors.index.json";
/// Single-file PyTorch weights.
pub const WEIGHTS_NAME: &str = "pytorch_model.bin";
/// Index of sharded PyTorch weights.
pub const WEIGHTS_INDEX_NAME: &str = "pytorch_model.bin.index.json";

/// `_add_variant`: inserts `variant` before the last extension (`model.fp16.safetensors`,
/// `model.safetensors.index.fp16.json`).
pub fn add_variant(name: &str, variant: Option<&str>) -> String {
    match (variant, name.rsplit_once('.')) {
        (Some(v), Some((stem, ext))) => format!("{stem}.{v}.{ext}"),
        _ => name.to_string(),
    }
}

/// An fnmatch pattern that matches exactly `name` (`*`, `?` and `[` escaped as one-character sets).
pub fn exact_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// The serialization of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `*.safetensors`.
    Safetensors,
    /// PyTorch pickles (`*.bin`).
    PyTorch,
}

impl WeightsFormat {
    /// `safetensors` or `pytorch`.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsFormat::Safetensors => "safetensors",
            WeightsFormat::PyTorch => "pytorch",
        }
    }
}

/// One weight file name transformers looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// File name relative to the model folder.
    pub name: String,
    /// The file is an index of shards.
    pub sharded: bool,
    /// Serialization of the weights.
    pub format: WeightsFormat,
}

/// The weight names in transformers' order: safetensors single, safetensors index (unless
/// `use_safetensors == Some(false)`), then PyTorch single and index (unless `Some(true)`).
pub fn weight_candidates(variant: Option<&str>, use_safetensors: Option<bool>) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(4);
    let mut add = |name: &str, sharded, format| {
        out.push(Candidate {
            name: add_variant(name, variant),
            sharded,
            format,
        })
    };
    if use_safetensors != Some(false) {
        add(SAFE_WEIGHTS_NAME, false, WeightsFormat::Safetensors);
        add(SAFE_WEIGHTS_INDEX_NAME, true, WeightsFormat::Safetensors);
    }
    if use_safetensors != Some(true) {
        add(WEIGHTS_NAME, false, WeightsFormat::PyTorch);
        add(WEIGHTS_INDEX_NAME, true, WeightsFormat::PyTorch);
    }
    out
}

/// The weights named by the config (`transformers_weights`): a `.safetensors` file or index (or
/// `adapter_model.bin`) inside the model folder.
pub fn explicit_candidate(name: &str) -> Result<Candidate, ModelError> {
    let bad = |reason| ModelError::BadExplicitWeights {
        value: name.escape_debug().to_string(),
        reason,
    };
    let format = if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
        WeightsFormat::Safetensors
    } else if name == "adapter_model.bin" {
        WeightsFormat::PyTorch
    } else {
        return Err(bad(
            "is neither a .safetensors file nor a .safetensors.index.json index",
        ));
    };
    RepoPath::new(name).map_err(|_| bad("must be a relative path inside the model folder"))?;
    Ok(Candidate {
        name: name.to_string(),
        sharded: name.ends_with(".safetensors.index.json"),
        format,
    })
}

/// How to choose the weights (`from_pretrained`'s `variant`, `use_safetensors`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightsOptions {
    /// Variant inserted in the names (`fp16` → `model.fp16.safetensors`).
    pub variant: Option<String>,
    /// `Some(true)`: safetensors only; `Some(false)`: PyTorch only; `None`: prefer safetensors.
    pub use_safetensors: Option<bool>,
    /// An explicit weight file (the config's `transformers_weights`); overrides the search.
    pub explicit: Option<String>,
}

/// The resolved weights of a model.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Serialization.
    pub format: WeightsFormat,
    /// The name that was found (the index for a sharded checkpoint).
    pub name: String,
    /// The index file of a sharded checkpoint.
    pub index: Option<PathBuf>,
    /// The weight files: the single file, or every shard in name order.
    pub files: Vec<PathBuf>,
    /// The parsed index (tensor → shard) of a sharded checkpoint.
    pub shard_index: Option<ShardIndex>,
}

impl Weights {
    /// True for an index plus shards.
    pub fn is_sharded(&self) -> bool {
        self.index.is_some()
    }
}

/// A sharded checkpoint's index (`*.index.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardIndex {
    /// The index's `metadata` object (e.g. `total_size`).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Tensor name → shard, in the file's order (a repeated name keeps its first place, last value).
    pub weight_map: Vec<(String, RepoPath)>,
    /// The distinct shards, sorted.
    pub shards: Vec<RepoPath>,
}

/// A JSON object read as ordered pairs (serde_json's map would sort the keys).
struct OrderedPairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping tensor names to shard files")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    out.push(pair);
                }
                Ok(OrderedPairs(out))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    weight_map: OrderedPairs,
}

impl ShardIndex {
    /// Parses an index; every shard must be a relative path inside the model folder.
    pub fn parse(bytes: &[u8]) -> Result<ShardIndex, String> {
        let raw: RawIndex = serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint index: {e}"))?;
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut weight_map: Vec<(String, RepoPath)> = Vec::with_capacity(raw.weight_map.0.len());
        for (tensor, shard) in raw.weight_map.0 {
            let shard = RepoPath::new(&shard).map_err(|e| format!("shard of tensor `{tensor}`: {e}"))?;
            match positions.get(&tensor) {
                Some(&i) => weight_map[i].1 = shard,
                None => {
                    positions.insert(tensor.clone(), weight_map.len());
                    weight_map.push((tensor, shard));
                }
            }
        }
        if weight_map.is_empty() {
            return Err("its weight_map is empty".into());
        }
        let shards: BTreeSet<RepoPath> = weight_map.iter().map(|(_, s)| s.clone()).collect();
        Ok(ShardIndex {
            metadata: raw.metadata.unwrap_or_default(),
            weight_map,
            shards: shards.into_iter().collect(),
        })
    }

    /// The shard holding `tensor`.
    pub fn shard_of(&self, tensor: &str) -> Option<&RepoPath> {
        self.weight_map.iter().find(|(t, _)| t == tensor).map(|(_, s)| s)
    }

    /// `metadata.total_size` (bytes of tensor data), when given.
    pub fn total_size(&self) -> Option<u64> {
        self.metadata.get("total_size").and_then(serde_json::Value::as_u64)
    }
}

impl ModelLoader {
    /// The weights as `from_pretrained` finds them: the first existing candidate, and for a
    /// sharded checkpoint its index parsed and every shard resolved (one snapshot, in parallel).
    pub async fn weights(&self, opts: &WeightsOptions) -> Result<Weights, ModelError> {
        let variant = opts.variant.as_deref();
        let candidates = match &opts.explicit {
            Some(name) => vec![explicit_candidate(name)?],
            None => weight_candidates(variant, opts.use_safetensors),
        };
        let (chosen, path) = match &self.source {
            ModelSource::Dir(dir) => {
                let base = join_sub(dir, &self.options.subfolder)?;
                let found = candidates.iter().find_map(|c| {
                    let p = RepoPath::new(&c.name).ok().map(|r| join_repo_path(&base, &r))?;
                    crate::fs::is_file(&p).then(|| (c.clone(), p))
                });
                found.ok_or_else(|| ModelError::NoWeightsInDir {
                    dir: base.clone(),
                    names: local_error_names(&candidates, opts),
                })?
            }
            ModelSource::Repo(_) => self.find_on_hub(&candidates, opts).await?,
        };
        if !chosen.sharded {
            return Ok(Weights {
                format: chosen.format,
                name: chosen.name,
                index: None,
                files: vec![path],
                shard_index: None,
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io("read", &path, e))?;
        let index = ShardIndex::parse(&bytes).map_err(|detail| ModelError::BadIndex {
            path: path.clone(),
            detail,
        })?;
        let files = self.shard_files(&index).await?;
        Ok(Weights {
            format: chosen.format,
            name: chosen.name,
            index: Some(path),
            files,
            shard_index: Some(index),
        })
    }

    /// Walks the candidates with `cached_file` (missing and gated tolerated); transformers' errors
    /// when none is found, or a connection error when the cache cannot tell.
    async fn find_on_hub(
        &self,
        candidates: &[Candidate],
        opts: &WeightsOptions,
    ) -> Result<(Candidate, PathBuf), ModelError> {
        let tolerate = Tolerate {
            missing_entries: true,
            connection_errors: false,
            gated: true,
        };
        let mut unknown: Vec<String> = Vec::new();
        let mut cause: Option<Error> = None;
        for c in candidates {
            let (path, swallowed) = self.probe_file(&c.name, tolerate).await?;
            if let Some(p) = path {
                return Ok((c.clone(), p));
            }
            if let Some(e) = swallowed {
                unknown.push(RepoPath::with_subfolder(&self.options.subfolder, &c.name)?.to_string());
                cause.get_or_insert(e);
            }
        }
        let ModelSource::Repo(repo) = &self.source else {
            return Err(ModelError::NoWeights {
                id: self.source.display_id(),
                names: Vec::new(),
            });
        };
        let id = repo.id.to_string();
        // The Hub could not be asked and the cache does not know: say so, not "does not exist".
        if let Some(source) = cause {
            return Err(ModelError::CannotConnect {
                endpoint: self.hub.client().endpoint().to_string(),
                files: unknown,
                source,
            });
        }
        let variant = opts.variant.as_deref();
        if let Some(name) = &opts.explicit {
            return Err(ModelError::NoWeights {
                id,
                names: vec![name.clone()],
            });
        }
        if opts.use_safetensors == Some(true) {
            return Err(ModelError::NoSafetensors {
                id,
                single: add_variant(SAFE_WEIGHTS_NAME, variant),
                index: add_variant(SAFE_WEIGHTS_INDEX_NAME, variant),
            });
        }
        if let Some(v) = variant {
            if self.has_file(WEIGHTS_NAME).await? || self.has_file(SAFE_WEIGHTS_NAME).await? {
                return Err(ModelError::VariantMissing {
                    id,
                    wanted: add_variant(WEIGHTS_NAME, variant),
                    variant: v.to_string(),
                });
            }
        }
        Err(ModelError::NoWeights {
            id,
            names: vec![
                add_variant(WEIGHTS_NAME, variant),
                add_variant(SAFE_WEIGHTS_NAME, variant),
            ],
        })
    }

    /// Every shard of an index: local paths (checked), or one `cached_files` call.
    async fn shard_files(&self, index: &ShardIndex) -> Result<Vec<PathBuf>, ModelError> {
        match &self.source {
            ModelSource::Dir(dir) => {
                let base = join_sub(dir, &self.options.subfolder)?;
                let paths: Vec<PathBuf> = index.shards.iter().map(|s| join_repo_path(&base, s)).collect();
                let missing: Vec<String> = index
                    .shards
                    .iter()
                    .zip(&paths)
                    .filter(|(_, p)| !crate::fs::is_file(p))
                    .map(|(s, _)| s.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Err(ModelError::MissingFiles {
                        id: dir.display().to_string(),
                        files: missing,
                        tree_url: None,
                    });
                }
                Ok(paths)
            }
            ModelSource::Repo(repo) => {
                let names: Vec<&str> = index.shards.iter().map(RepoPath::as_str).collect();
                let resolved = self.cached_files(&names, Tolerate::NOTHING).await?;
                let missing: Vec<String> = names
                    .iter()
                    .zip(&resolved)
                    .filter(|(_, r)| r.is_none())
                    .map(|(n, _)| n.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Err(self.missing_files(repo, missing));
                }
                Ok(resolved.into_iter().flatten().collect())
            }
        }
    }
}

fn join_sub(dir: &std::path::Path, subfolder: &str) -> Result<PathBuf, ModelError> {
    let sub = subfolder.trim_matches('/');
    if sub.is_empty() {
        return Ok(dir.to_path_buf());
    }
    Ok(join_repo_path(dir, &RepoPath::new(sub)?))
}

/// The names transformers' local-folder error lists.
fn local_error_names(candidates: &[Candidate], opts: &WeightsOptions) -> Vec<String> {
    if opts.explicit.is_some() {
        return candidates.iter().map(|c| c.name.clone()).collect();
    }
    let variant = opts.variant.as_deref();
    let mut names = vec![add_variant(SAFE_WEIGHTS_NAME, variant)];
    if opts.use_safetensors != Some(true) {
        names.push(add_variant(WEIGHTS_NAME, variant));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(add_variant("model.safetensors", Some("fp16")), "model.fp16.safetensors");
        assert_eq!(
            add_variant("model.safetensors.index.json", Some("fp16")),
            "model.safetensors.index.fp16.json"
        );
        assert_eq!(add_variant("pytorch_model.bin", None), "pytorch_model.bin");
        assert_eq!(add_variant("noext", Some("x")), "noext");
    }

    #[test]
    fn candidate_order() {
        let names = |v: Vec<Candidate>| v.into_iter().map(|c| (c.name, c.sharded)).collect::<Vec<_>>();
        assert_eq!(
            names(weight_candidates(None, None)),
            vec![
                ("model.safetensors".to_string(), false),
                ("model.safetensors.index.json".to_string(), true),
                ("pytorch_model.bin".to_string(), false),
                ("pytorch_model.bin.index.json".to_string(), true),
            ]
        );
        let only_safe = weight_candidates(Some("fp16"), Some(true));
        assert_eq!(only_safe.len(), 2);
        assert_eq!(only_safe[1].name, "model.safetensors.index.fp16.json");
        assert!(only_safe.iter().all(|c| c.format == WeightsFormat::Safetensors));
        let only_bin = weight_candidates(None, Some(false));
        assert_eq!(only_bin[0].name, "pytorch_model.bin");
        assert!(only_bin.iter().all(|c| c.format == WeightsFormat::PyTorch));
    }

    #[test]
    fn explicit_names() {
        assert!(explicit_candidate("weights/x.safetensors.index.json").unwrap().sharded);
        assert_eq!(
            explicit_candidate("adapter_model.bin").unwrap().format,
            WeightsFormat::PyTorch
        );
        for bad in ["pytorch_model.bin", "../x.safetensors", "/abs/x.safetensors", "x.gguf"] {
            assert!(
                matches!(explicit_candidate(bad), Err(ModelError::BadExplicitWeights { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn exact_patterns_match_only_the_name() {
        use crate::download::patterns::fnmatch;
        for name in [
            "model-00001-of-00002.safetensors",
            "we[i]rd*na?me.bin",
            "a/b.safetensors",
        ] {
            let p = exact_pattern(name);
            assert!(fnmatch(&p, name), "{p} vs {name}");
        }
        assert!(!fnmatch(&exact_pattern("a*.bin"), "abc.bin"));
        assert!(!fnmatch(&exact_pattern("a?.bin"), "ab.bin"));
        assert!(!fnmatch(&exact_pattern("[ab].bin"), "a.bin"));
    }

    #[test]
    fn index_parsing() {
        let idx = ShardIndex::parse(
            br#"{"metadata": {"total_size": 96}, "weight_map": {
                "z.weight": "model-00002-of-00002.safetensors",
                "a.weight": "model-00001-of-00002.safetensors",
                "m.bias": "model-00001-of-00002.safetensors",
                "z.weight": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let keys: Vec<&str> = idx.weight_map.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(keys, ["z.weight", "a.weight", "m.bias"], "file order, duplicates once");
        let shards: Vec<&str> = idx.shards.iter().map(RepoPath::as_str).collect();
        assert_eq!(
            shards,
            ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        );
        assert_eq!(idx.total_size(), Some(96));
        assert_eq!(
            idx.shard_of("m.bias").map(RepoPath::as_str),
            Some("model-00001-of-00002.safetensors")
        );
        assert_eq!(idx.shard_of("nope"), None);
        // Shards in a sub folder are fine; no metadata is fine.
        let idx = ShardIndex::parse(br#"{"weight_map": {"a": "part/one.safetensors"}}"#).unwrap();
        assert!(idx.metadata.is_empty());
        assert_eq!(idx.shards[0].as_str(), "part/one.safetensors");
    }

    #[test]
    fn hostile_indexes_are_rejected() {
        for bad in [
            r#"{"weight_map": {"a": "../../etc/passwd"}}"#,
            r#"{"weight_map": {"a": "/etc/passwd"}}"#,
            r#"{"weight_map": {"a": "x/../../y.safetensors"}}"#,
            r#"{"weight_map": {"a": "C:/x.safetensors"}}"#,
            r#"{"weight_map": {"a": 3}}"#,
            r#"{"weight_map": {}}"#,
            r#"{"metadata": {}}"#,
            r#"[1, 2]"#,
            "not json",
        ] {
            assert!(ShardIndex::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let err = ShardIndex::parse(br#"{"weight_map": {"t": "../x.safetensors"}}"#).unwrap_err();
        assert!(err.contains("tensor `t`") && err.contains(".."), "{err}");
    }
}
