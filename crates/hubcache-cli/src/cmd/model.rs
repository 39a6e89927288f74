//! `hubcache model …`: resolve everything a model needs, as `from_pretrained` would.
//!
//! Prints the bundle on stdout (file kind → path, commit, weights summary), or one JSON object
//! with `--json`; warnings and errors go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::models::{self, BundleOptions, LoadOptions, ModelBundle, ModelError, ModelSource, WeightsOptions};
use hubcache::{RepoType, Revision, Settings};
use serde_json::json;

use crate::units::{format_count, format_size};
use crate::{CmdResult, Hinted};

impl Hinted for ModelError {
    fn hints(&self) -> Vec<String> {
        ModelError::hints(self)
    }
}

/// Arguments of `hubcache model`.
#[derive(Args)]
pub struct ModelArgs {
    /// Repo id (`org/name`) or a local model folder (an existing folder wins).
    repo_id_or_dir: String,
    /// Branch, tag, `refs/pr/N` or commit; resolved once, then every file comes from that commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Folder inside the repo that holds the model.
    #[arg(long, default_value = "")]
    subfolder: String,
    /// Repo type.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    offline: bool,
    /// Weights variant, e.g. `fp16` for `model.fp16.safetensors`.
    #[arg(long)]
    variant: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Access token (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
    /// No progress bars or warnings; only the result and errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `hubcache model`.
pub fn run(settings: &Settings, args: ModelArgs) -> CmdResult {
    let repo_type: RepoType = args.repo_type.parse().map_err(hubcache::Error::from)?;
    let source = ModelSource::parse(&args.repo_id_or_dir, repo_type)?;
    let revision = Revision::new(&args.revision).map_err(hubcache::Error::from)?;
    let builder = crate::hub_builder(settings, args.cache_dir.as_ref(), args.token.as_ref(), args.quiet);
    let hub = hubcache::blocking::Hub::new(builder)?;
    let options = LoadOptions {
        revision,
        subfolder: args.subfolder.clone(),
        local_only: args.offline,
        force_download: false,
    };
    let mut loader = models::blocking::ModelLoader::new(&hub, source, options);
    let bundle = loader.bundle(&BundleOptions {
        weights: WeightsOptions {
            variant: args.variant.clone(),
            ..WeightsOptions::default()
        },
        inspect: true,
    })?;
    if args.json {
        println!("{}", to_json(&bundle));
    } else {
        print_text(&bundle);
    }
    Ok(ExitCode::SUCCESS)
}

fn source_fields(bundle: &ModelBundle) -> (String, Option<String>) {
    match &bundle.source {
        ModelSource::Dir(d) => (d.display().to_string(), None),
        ModelSource::Repo(r) => (r.id.to_string(), Some(r.repo_type.to_string())),
    }
}

fn to_json(bundle: &ModelBundle) -> serde_json::Value {
    let (source, repo_type) = source_fields(bundle);
    let s = &bundle.summary;
    json!({
        "source": source,
        "local": repo_type.is_none(),
        "repo_type": repo_type,
        "revision": bundle.revision.to_string(),
        "commit": bundle.commit.as_ref().map(ToString::to_string),
        "files": bundle.files.iter().map(|f| json!({
            "kind": f.kind.as_str(),
            "name": f.name,
            "path": f.path.display().to_string(),
        })).collect::<Vec<_>>(),
        "absent": bundle.absent,
        "weights": {
            "format": bundle.weights.format.as_str(),
            "name": bundle.weights.name,
            "sharded": bundle.weights.is_sharded(),
            "index": bundle.weights.index.as_ref().map(|p| p.display().to_string()),
            "shards": s.files,
            "tensors": s.tensors,
            "indexed_tensors": bundle.weights.shard_index.as_ref().map(|i| i.weight_map.len()),
            "total_bytes": s.total_bytes,
            "parameters": s.parameters,
            "dtypes": s.dtypes,
        },
    })
}

fn print_text(bundle: &ModelBundle) {
    let (source, repo_type) = source_fields(bundle);
    match repo_type {
        Some(t) => println!("{:<26}{source} ({t})", "model"),
        None => println!("{:<26}{source} (local folder)", "model"),
    }
    if matches!(bundle.source, ModelSource::Repo(_)) {
        println!("{:<26}{}", "revision", bundle.revision);
        let commit = bundle.commit.as_ref().map(ToString::to_string);
        println!("{:<26}{}", "commit", commit.as_deref().unwrap_or("-"));
    }
    for f in &bundle.files {
        println!("{:<26}{}", f.kind.as_str(), f.path.display());
    }
    let s = &bundle.summary;
    let mut parts = vec![
        bundle.weights.format.as_str().to_string(),
        format!("{} {}", s.files, if s.files == 1 { "file" } else { "shards" }),
    ];
    if let Some(t) = s.tensors {
        parts.push(format!("{t} tensors"));
    }
    parts.push(format!("{} bytes ({})", s.total_bytes, format_size(s.total_bytes)));
    if let Some(p) = s.parameters {
        match p {
            0..1_000 => parts.push(format!("{p} parameters")),
            _ => parts.push(format!("{p} parameters ({})", format_count(p))),
        }
    }
    if !s.dtypes.is_empty() {
        let dtypes: Vec<&str> = s.dtypes.keys().map(String::as_str).collect();
        parts.push(format!("dtypes {}", dtypes.join(", ")));
    }
    println!("{:<26}{}", "summary", parts.join(", "));
    if !bundle.absent.is_empty() {
        println!("{:<26}{}", "absent", bundle.absent.join(", "));
    }
}
