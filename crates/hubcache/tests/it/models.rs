//! Model resolution (`hubcache::models`) against the fake Hub: transformers' `cached_file(s)`,
//! `has_file` and weight-loading behaviours (its `tests/utils/test_hub_utils.py` and
//! `test_offline.py`), asserted on returned paths, cache contents and the request log.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hubcache::models::{
    self, BundleOptions, FileKind, LoadOptions, ModelError, ModelSource, Tolerate, WeightsFormat, WeightsOptions,
};
use hubcache::{Error, HubBuilder, Repo, RepoType, Revision};
use hubcache_test_support::{safetensors_file, shard_name, sharded_model, FakeHub, Fault, FaultRule, RepoKind};

const REPO: &str = "org/model";
const SHARDED: &str = "org/sharded";

fn seed(hub: &FakeHub) -> String {
    hub.commit(
        RepoKind::Model,
        REPO,
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"model_type\": \"bert\"}")),
            (
                "model.safetensors".into(),
                safetensors_file(&[("w", "F32", &[4, 4]), ("b", "F32", &[4])]),
            ),
            ("tokenizer.json".into(), Bytes::from_static(b"{\"version\": \"1.0\"}")),
            ("sub/config.json".into(), Bytes::from_static(b"{\"sub\": true}")),
        ],
    )
}

fn builder(hub: &FakeHub, cache: &Path) -> HubBuilder {
    fast_builder(hub, cache, 2, Duration::from_secs(2))
}

struct Env {
    hub: FakeHub,
    cache: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Env {
    fn new() -> Env {
        Env {
            hub: FakeHub::start(),
            cache: tempfile::tempdir().unwrap(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn loader_with(&self, repo: &str, opts: LoadOptions, offline: bool) -> models::ModelLoader {
        let hub = builder(&self.hub, self.cache.path()).offline(offline).build().unwrap();
        models::ModelLoader::new(hub, ModelSource::Repo(Repo::model(repo).unwrap()), opts)
    }

    fn loader(&self, repo: &str) -> models::ModelLoader {
        self.loader_with(repo, LoadOptions::default(), false)
    }

    fn at(&self, repo: &str, revision: &str) -> models::ModelLoader {
        let opts = LoadOptions {
            revision: Revision::new(revision).unwrap(),
            ..LoadOptions::default()
        };
        self.loader_with(repo, opts, false)
    }

    fn offline(&self, repo: &str) -> models::ModelLoader {
        self.loader_with(repo, LoadOptions::default(), true)
    }

    fn file(&self, l: &models::ModelLoader, name: &str, t: Tolerate) -> Result<Option<PathBuf>, ModelError> {
        self.rt.block_on(l.cached_file(name, t))
    }

    fn bundle(&self, l: &mut models::ModelLoader) -> Result<models::ModelBundle, ModelError> {
        self.rt.block_on(l.bundle(&BundleOptions::default()))
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache
            .path()
            .canonicalize()
            .unwrap()
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// Requests logged since the last call (and clears the log).
    fn take_requests(&self) -> Vec<String> {
        let out = self
            .hub
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        self.hub.clear_requests();
        out
    }
}

// ---- transformers tests/utils/test_hub_utils.py ----

#[test]
fn cached_file_fills_the_layout_and_reuses_it() {
    let env = Env::new();
    let commit = seed(&env.hub);
    let l = env.loader(REPO);
    let path = env.file(&l, "config.json", Tolerate::NOTHING).unwrap().unwrap();
    let root = env.repo_dir(REPO);
    for d in ["blobs", "refs", "snapshots"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    let main = fs::read_to_string(root.join("refs/main")).unwrap();
    assert_eq!(main, commit);
    assert_eq!(path, root.join("snapshots").join(&main).join("config.json"));
    assert_eq!(env.file(&l, "config.json", Tolerate::NOTHING).unwrap().unwrap(), path);

    // A short commit resolves to the full-hash snapshot and leaves refs/<short>.
    let short = &commit[..7];
    let by_short = env.at(REPO, short);
    let p = env.file(&by_short, "config.json", Tolerate::NOTHING).unwrap().unwrap();
    assert_eq!(p, path);
    assert_eq!(fs::read_to_string(root.join("refs").join(short)).unwrap(), commit);
    // And pinning a short revision asks the revision API once, then writes the same ref.
    fs::remove_file(root.join("refs").join(short)).unwrap();
    let mut pinned = env.at(REPO, short);
    assert_eq!(env.rt.block_on(pinned.pin()).unwrap().as_str(), commit);
    assert_eq!(fs::read_to_string(root.join("refs").join(short)).unwrap(), commit);
}

#[test]
fn cached_file_errors_say_what_is_wrong() {
    let env = Env::new();
    seed(&env.hub);
    let err = env
        .file(&env.loader("org/nope"), "config.json", Tolerate::NOTHING)
        .unwrap_err();
    assert!(matches!(err, ModelError::NotAModel { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a valid model identifier"), "{err}");
    assert!(err.hints().iter().any(|h| h.contains("token")), "{:?}", err.hints());

    let err = env
        .file(&env.at(REPO, "nope"), "config.json", Tolerate::NOTHING)
        .unwrap_err();
    assert!(err.to_string().contains("is not a valid git identifier"), "{err}");
    assert!(err.to_string().starts_with("nope "), "{err}");
    assert!(!err.hints().is_empty());

    let err = env.file(&env.loader(REPO), "conf", Tolerate::NOTHING).unwrap_err();
    assert!(
        err.to_string().contains("does not appear to have a file named conf"),
        "{err}"
    );
    assert!(err.to_string().contains("/org/model/tree/main"), "{err}");
    assert!(err.is_not_found());

    // A lone missing config.json is not an error (transformers' "last escape").
    let l = env.loader("org/noconfig");
    env.hub.commit(
        RepoKind::Model,
        "org/noconfig",
        "main",
        vec![("a.txt".into(), Bytes::from_static(b"a"))],
    );
    assert_eq!(env.file(&l, "config.json", Tolerate::NOTHING).unwrap(), None);
    // But config.json among other files is.
    let err = env
        .rt
        .block_on(l.cached_files(&["a.txt", "config.json"], Tolerate::NOTHING))
        .unwrap_err();
    assert!(err.to_string().contains("a file named config.json"), "{err}");
}

#[test]
fn non_existence_is_cached() {
    let env = Env::new();
    let commit = seed(&env.hub);
    let l = env.loader(REPO);
    assert_eq!(env.file(&l, "conf", Tolerate::MISSING).unwrap(), None);
    let marker = env.repo_dir(REPO).join(".no_exist").join(&commit).join("conf");
    assert!(marker.is_file(), "missing file recorded at {}", marker.display());
    env.take_requests();

    // Pinned to the commit: answered by the marker, no request; same offline.
    let pinned = env.at(REPO, &commit);
    assert_eq!(env.file(&pinned, "conf", Tolerate::MISSING).unwrap(), None);
    assert_eq!(env.file(&env.offline(REPO), "conf", Tolerate::MISSING).unwrap(), None);
    let local = env.loader_with(
        REPO,
        LoadOptions {
            local_only: true,
            ..LoadOptions::default()
        },
        false,
    );
    assert_eq!(env.file(&local, "conf", Tolerate::MISSING).unwrap(), None);
    assert_eq!(env.take_requests(), Vec::<String>::new());
    // Still an error when missing entries are not tolerated, also from the marker.
    let err = env.file(&pinned, "conf", Tolerate::NOTHING).unwrap_err();
    assert!(
        err.to_string().contains("does not appear to have a file named conf"),
        "{err}"
    );

    // An HTTP error with connection errors tolerated gives None; not tolerated, a clear error.
    env.hub.inject(FaultRule {
        times: 100,
        ..FaultRule::new(
            "/resolve/",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        )
    });
    let tolerant = Tolerate {
        connection_errors: true,
        ..Tolerate::NOTHING
    };
    assert_eq!(env.file(&l, "tokenizer.json", tolerant).unwrap(), None);
    let err = env.file(&l, "tokenizer.json", Tolerate::NOTHING).unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("couldn't connect"), "{err}");
    env.hub.clear_faults();
    env.hub.inject(FaultRule::new(
        "/resolve/",
        Fault::Status {
            status: 403,
            retry_after: None,
        },
    ));
    let err = env.file(&l, "tokenizer.json", Tolerate::NOTHING).unwrap_err();
    assert!(matches!(err, ModelError::Http { .. }), "{err:?}");
    assert!(err.to_string().contains("specific connection error"), "{err}");
}

#[test]
fn has_file_asks_the_hub_or_the_cache() {
    let env = Env::new();
    seed(&env.hub);
    let l = env.loader(REPO);
    assert!(env.rt.block_on(l.has_file("model.safetensors")).unwrap());
    assert!(env.rt.block_on(l.has_file("config.json")).unwrap());
    assert!(!env.rt.block_on(l.has_file("tf_model.h5")).unwrap());
    assert!(!env.rt.block_on(l.has_file("flax_model.msgpack")).unwrap());
    // HEAD only: nothing downloaded.
    assert!(!env.repo_dir(REPO).join("blobs").exists());

    // In the cache only: false on an empty cache, true once cached, without a request.
    let local = env.loader_with(
        REPO,
        LoadOptions {
            local_only: true,
            ..LoadOptions::default()
        },
        false,
    );
    env.take_requests();
    assert!(!env.rt.block_on(local.has_file("config.json")).unwrap());
    assert_eq!(env.take_requests().len(), 0);
    env.file(&l, "config.json", Tolerate::NOTHING).unwrap();
    env.take_requests();
    assert!(env.rt.block_on(local.has_file("config.json")).unwrap());
    assert!(env.rt.block_on(env.offline(REPO).has_file("config.json")).unwrap());
    assert_eq!(env.take_requests().len(), 0);

    // The Hub unreachable: the cache answers.
    env.hub.inject(FaultRule::new(
        "/resolve/",
        Fault::Status {
            status: 502,
            retry_after: None,
        },
    ));
    assert!(env.rt.block_on(l.has_file("config.json")).unwrap());

    let err = env
        .rt
        .block_on(env.loader("org/nope").has_file("config.json"))
        .unwrap_err();
    assert!(err.to_string().contains("is not a local folder"), "{err}");
    let err = env
        .rt
        .block_on(env.at(REPO, "nope").has_file("config.json"))
        .unwrap_err();
    assert!(err.to_string().contains("is not a valid git identifier"), "{err}");
}

#[test]
fn tolerant_lookups_still_raise_for_bad_repo_and_revision() {
    let env = Env::new();
    seed(&env.hub);
    assert_eq!(env.file(&env.loader(REPO), "nope.json", Tolerate::ALL).unwrap(), None);
    assert!(matches!(
        env.file(&env.loader("org/nope"), "config.json", Tolerate::ALL),
        Err(ModelError::NotAModel { .. })
    ));
    assert!(matches!(
        env.file(&env.at(REPO, "nope"), "config.json", Tolerate::ALL),
        Err(ModelError::BadRevision { .. })
    ));
    let cfg = env
        .file(&env.loader(REPO), "config.json", Tolerate::ALL)
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(cfg).unwrap()).unwrap();
    assert_eq!(v["model_type"], "bert");
    // Subfolders are joined into the repo path.
    let sub = env.loader_with(
        REPO,
        LoadOptions {
            subfolder: "sub".into(),
            ..LoadOptions::default()
        },
        false,
    );
    let p = env.file(&sub, "config.json", Tolerate::NOTHING).unwrap().unwrap();
    assert!(p.ends_with("sub/config.json"), "{}", p.display());
    assert!(matches!(
        env.file(&sub, "../config.json", Tolerate::ALL),
        Err(ModelError::Name(_))
    ));
}

#[test]
fn local_folder_is_used_as_is() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), b"{}").unwrap();
    fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
    let source = ModelSource::parse(dir.path().to_str().unwrap(), RepoType::Model).unwrap();
    assert_eq!(source, ModelSource::Dir(dir.path().to_path_buf()));
    let hub = builder(&env.hub, env.cache.path()).build().unwrap();
    let l = models::ModelLoader::new(hub, source, LoadOptions::default());
    assert_eq!(
        env.file(&l, "tokenizer.json", Tolerate::NOTHING).unwrap(),
        Some(dir.path().join("tokenizer.json"))
    );
    assert_eq!(env.file(&l, "vocab.txt", Tolerate::MISSING).unwrap(), None);
    let err = env.file(&l, "vocab.txt", Tolerate::NOTHING).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not appear to have a file named vocab.txt"),
        "{err}"
    );
    fs::remove_file(dir.path().join("config.json")).unwrap();
    assert_eq!(env.file(&l, "config.json", Tolerate::NOTHING).unwrap(), None);
    assert!(env.rt.block_on(l.has_file("tokenizer.json")).unwrap());
    assert!(env.hub.requests().is_empty());

    let err = ModelSource::parse("not a repo/id/x", RepoType::Model).unwrap_err();
    assert!(matches!(err, ModelError::InvalidSource { .. }), "{err:?}");
}

#[test]
fn gated_repo_messages() {
    let env = Env::new();
    seed(&env.hub);
    env.hub.set_gated(RepoKind::Model, REPO);
    let l = env.loader(REPO);
    let err = env.file(&l, "config.json", Tolerate::NOTHING).unwrap_err();
    assert!(err.is_gated(), "{err:?}");
    assert!(err.to_string().contains("trying to access a gated repo"), "{err}");
    assert!(
        err.hints().iter().any(|h| h.contains("request access")),
        "{:?}",
        err.hints()
    );
    let tolerant = Tolerate {
        gated: true,
        ..Tolerate::NOTHING
    };
    assert_eq!(env.file(&l, "config.json", tolerant).unwrap(), None);
    let err = env.rt.block_on(l.has_file("config.json")).unwrap_err();
    assert!(err.is_gated(), "{err:?}");
    // The whole bundle: the gated message, not "no weights".
    let err = env.bundle(&mut env.loader(REPO)).unwrap_err();
    assert!(err.is_gated(), "{err:?}");
}

#[test]
fn unexpected_errors_propagate_unchanged() {
    let env = Env::new();
    seed(&env.hub);
    env.hub.inject(FaultRule {
        times: 100,
        ..FaultRule::new("/lfs/", Fault::WrongBytes)
    });
    let err = env
        .file(&env.loader(REPO), "model.safetensors", Tolerate::ALL)
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Download(Error::Transfer { .. })),
        "a corrupt transfer is neither missing nor a connection error: {err:?}"
    );
}

// ---- weights and bundles ----

fn seed_sharded(hub: &FakeHub) -> String {
    hub.commit(RepoKind::Model, SHARDED, "main", sharded_model())
}

#[test]
fn sharded_model_online_then_offline_with_zero_requests() {
    let env = Env::new();
    let commit = seed_sharded(&env.hub);
    let mut l = env.loader(SHARDED);
    let b = env.bundle(&mut l).unwrap();
    let online = env.take_requests();
    assert_eq!(b.commit.as_ref().unwrap().as_str(), commit);
    assert!(b.weights.is_sharded());
    assert_eq!(b.weights.format, WeightsFormat::Safetensors);
    assert_eq!(b.weights.files.len(), 3);
    let idx = b.weights.shard_index.as_ref().unwrap();
    assert_eq!(idx.weight_map.len(), 12);
    assert_eq!(
        idx.shard_of("encoder.layer.1.out.bias").unwrap().as_str(),
        shard_name(2, 3)
    );
    assert_eq!(b.summary.tensors, Some(12));
    assert_eq!(b.summary.parameters, Some(516));
    assert_eq!(b.summary.dtypes.keys().collect::<Vec<_>>(), ["F16", "F32"]);
    for (i, f) in b.weights.files.iter().enumerate() {
        assert!(f.ends_with(shard_name(i + 1, 3)), "{}", f.display());
        assert!(f.starts_with(env.repo_dir(SHARDED).join("snapshots").join(&commit)));
    }
    assert!(b.file(FileKind::GenerationConfig).is_some() && b.file(FileKind::Vocab).is_some());
    assert!(b.file(FileKind::Tokenizer).is_none());
    assert!(b.absent.contains(&"tokenizer.json".to_string()));
    // One revision call pins everything; the shards come from one tree listing, no HEAD each.
    assert_eq!(
        online
            .iter()
            .filter(|r| r.starts_with("GET /api/models/org/sharded/revision/"))
            .count(),
        1,
        "{online:#?}"
    );
    assert!(
        online.iter().all(|r| !r.contains("/main/")),
        "every file request uses the commit: {online:#?}"
    );
    assert!(
        !online.iter().any(|r| r.starts_with("HEAD") && r.contains("model-0000")),
        "{online:#?}"
    );
    assert_eq!(online.iter().filter(|r| r.contains("/tree/")).count(), 1, "{online:#?}");

    // Offline: the same bundle, zero requests.
    let again = env.bundle(&mut env.offline(SHARDED)).unwrap();
    assert_eq!(again.files, b.files);
    assert_eq!(again.absent, b.absent);
    assert_eq!(env.take_requests(), Vec::<String>::new());

    // Online again: only the revision call; pinned to the commit, nothing at all.
    let again = env.bundle(&mut env.loader(SHARDED)).unwrap();
    assert_eq!(again.files, b.files);
    assert_eq!(
        env.take_requests(),
        vec![format!("GET /api/models/{SHARDED}/revision/main")]
    );
    env.bundle(&mut env.at(SHARDED, &commit)).unwrap();
    assert_eq!(env.take_requests(), Vec::<String>::new());
}

#[test]
fn optional_files_are_probed_once() {
    let env = Env::new();
    let commit = seed(&env.hub);
    env.bundle(&mut env.loader(REPO)).unwrap();
    let no_exist = env.repo_dir(REPO).join(".no_exist").join(&commit);
    for name in [
        "generation_config.json",
        "merges.txt",
        "chat_template.jinja",
        "preprocessor_config.json",
    ] {
        assert!(no_exist.join(name).is_file(), "{name} recorded as missing");
    }
    // model.safetensors exists, so no other weight candidate was probed.
    assert!(!no_exist.join("pytorch_model.bin").exists());
    env.take_requests();
    let b = env.bundle(&mut env.at(REPO, &commit)).unwrap();
    assert_eq!(env.take_requests(), Vec::<String>::new());
    assert_eq!(b.absent.len(), models::OPTIONAL_FILES.len() - 1, "{:?}", b.absent);
    env.bundle(&mut env.offline(REPO)).unwrap();
    assert_eq!(env.take_requests(), Vec::<String>::new());
}

#[test]
fn missing_shard_offline_names_the_shard() {
    let env = Env::new();
    let commit = seed_sharded(&env.hub);
    env.bundle(&mut env.loader(SHARDED)).unwrap();
    let shard = env
        .repo_dir(SHARDED)
        .join("snapshots")
        .join(&commit)
        .join(shard_name(2, 3));
    let blob = shard.canonicalize().unwrap();
    fs::remove_file(&shard).unwrap();
    fs::remove_file(&blob).unwrap();
    env.take_requests();
    let err = env.bundle(&mut env.offline(SHARDED)).unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains(&shard_name(2, 3)), "{err}");
    assert!(
        !err.to_string().contains(&shard_name(1, 3)),
        "only the missing shard: {err}"
    );
    assert_eq!(env.take_requests(), Vec::<String>::new());
    // Online, the missing shard is fetched again (and only it).
    env.bundle(&mut env.loader(SHARDED)).unwrap();
    assert!(shard.is_file());
    let fetched: Vec<String> = env
        .take_requests()
        .into_iter()
        .filter(|r| r.contains("/lfs/"))
        .collect();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
}

#[test]
fn shard_index_cannot_escape_the_repo() {
    let env = Env::new();
    let index = br#"{"metadata": {}, "weight_map": {"a": "../../../../outside.safetensors"}}"#;
    env.hub.commit(
        RepoKind::Model,
        "org/evil",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("model.safetensors.index.json".into(), Bytes::from_static(index)),
        ],
    );
    let err = env.bundle(&mut env.loader("org/evil")).unwrap_err();
    assert!(matches!(err, ModelError::BadIndex { .. }), "{err:?}");
    assert!(err.to_string().contains(".."), "{err}");
    assert!(!env.cache.path().join("outside.safetensors").exists());
}

#[test]
fn weight_choice_follows_transformers() {
    let env = Env::new();
    let st = || safetensors_file(&[("w", "F16", &[2, 2])]);
    env.hub.commit(
        RepoKind::Model,
        "org/bin",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("pytorch_model.bin".into(), Bytes::from_static(b"pickle")),
        ],
    );
    env.hub.commit(
        RepoKind::Model,
        "org/fp16",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("model.safetensors".into(), st()),
            ("model.fp16.safetensors".into(), st()),
        ],
    );
    env.hub.commit(
        RepoKind::Model,
        "org/empty",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{}"))],
    );
    let opts = WeightsOptions::default();
    let w = env.rt.block_on(env.loader("org/bin").weights(&opts)).unwrap();
    assert_eq!(
        (w.format, w.name.as_str()),
        (WeightsFormat::PyTorch, "pytorch_model.bin")
    );
    // The safetensors misses are recorded, so the next pinned lookup is free.
    let mut pinned = env.loader("org/bin");
    env.rt.block_on(pinned.pin());
    env.take_requests();
    env.rt.block_on(pinned.weights(&opts)).unwrap();
    assert_eq!(env.take_requests(), Vec::<String>::new());
    let b = env.bundle(&mut env.loader("org/bin")).unwrap();
    assert_eq!(b.summary.tensors, None, "no header to read in a pickle");

    let fp16 = WeightsOptions {
        variant: Some("fp16".into()),
        ..WeightsOptions::default()
    };
    let w = env.rt.block_on(env.loader("org/fp16").weights(&fp16)).unwrap();
    assert_eq!(w.name, "model.fp16.safetensors");
    let bf16 = WeightsOptions {
        variant: Some("bf16".into()),
        ..WeightsOptions::default()
    };
    let err = env.rt.block_on(env.loader("org/fp16").weights(&bf16)).unwrap_err();
    assert!(matches!(err, ModelError::VariantMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("without the variant bf16"), "{err}");

    let err = env.rt.block_on(env.loader("org/empty").weights(&opts)).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not appear to have a file named pytorch_model.bin or model.safetensors"),
        "{err}"
    );
    let safe_only = WeightsOptions {
        use_safetensors: Some(true),
        ..WeightsOptions::default()
    };
    let err = env.rt.block_on(env.loader("org/bin").weights(&safe_only)).unwrap_err();
    assert!(err.to_string().contains("cannot be loaded with safetensors"), "{err}");

    // Offline with nothing cached: a connection error naming the files, not "does not exist".
    let err = env.rt.block_on(env.offline("org/fp16").weights(&opts)).unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn corrupt_weights_header_is_a_clear_error() {
    let env = Env::new();
    let mut bad = safetensors_file(&[("w", "F32", &[4, 4])]).to_vec();
    bad.truncate(bad.len() - 3);
    env.hub.commit(
        RepoKind::Model,
        "org/corrupt",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("model.safetensors".into(), Bytes::from(bad)),
        ],
    );
    let err = env.bundle(&mut env.loader("org/corrupt")).unwrap_err();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt safetensors file"), "{err}");
    assert!(!err.hints().is_empty());
}

#[test]
fn local_folder_bundle_makes_no_request() {
    let env = Env::new();
    seed_sharded(&env.hub);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in sharded_model() {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    let hub = builder(&env.hub, env.cache.path()).build().unwrap();
    let mut l = models::ModelLoader::new(hub, ModelSource::Dir(dir.path().into()), LoadOptions::default());
    let b = env.bundle(&mut l).unwrap();
    assert_eq!(b.commit, None);
    assert_eq!(b.summary.parameters, Some(516));
    assert!(b.files.iter().all(|f| f.path.starts_with(dir.path())));
    assert!(env.hub.requests().is_empty());
    // A missing shard in a folder is named too.
    fs::remove_file(dir.path().join(shard_name(3, 3))).unwrap();
    let err = env.bundle(&mut l).unwrap_err();
    assert!(err.to_string().contains(&shard_name(3, 3)), "{err}");
}

#[test]
fn blocking_facade_resolves_the_same_bundle() {
    let env = Env::new();
    let commit = seed_sharded(&env.hub);
    let hub = hubcache::blocking::Hub::new(builder(&env.hub, env.cache.path())).unwrap();
    let source = ModelSource::Repo(Repo::model(SHARDED).unwrap());
    let mut l = models::blocking::ModelLoader::new(&hub, source, LoadOptions::default());
    assert_eq!(l.pin().unwrap().as_str(), commit);
    let b = l.bundle(&BundleOptions::default()).unwrap();
    assert_eq!(b.weights.files.len(), 3);
    assert_eq!(
        l.cached_file("config.json", Tolerate::NOTHING).unwrap().as_deref(),
        b.config()
    );
    assert!(l.has_file("vocab.txt").unwrap());
}
