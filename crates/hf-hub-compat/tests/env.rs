//! The one deliberate difference from hf-hub: every constructor reads the environment as
//! Python does (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE,
//! TRANSFORMERS_OFFLINE). One test in its own binary, since it sets process variables.

use bytes::Bytes;
use hf_hub::Cache;
use hubcache_test_support::{FakeHub, RepoKind};

const MODEL: &str = "org/env-model";

fn set(name: &str, value: Option<&str>) {
    match value {
        Some(v) => std::env::set_var(name, v),
        None => std::env::remove_var(name),
    }
}

#[test]
fn environment_is_read_as_python_reads_it() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        MODEL,
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("weights.bin".into(), Bytes::from(vec![7u8; 200_000])),
        ],
    );
    let home = tempfile::tempdir().expect("home");
    for name in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN_PATH",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    ] {
        set(name, None);
    }
    set("HF_HOME", home.path().to_str());
    set("HF_ENDPOINT", Some(&hub.url()));
    set("HF_TOKEN", Some("hf_from_env"));

    // The cache and the token, as Python resolves them.
    let cache = Cache::from_env();
    assert_eq!(cache.path(), &home.path().join("hub"));
    assert_eq!(Cache::default().path(), cache.path());
    assert_eq!(cache.token_path(), home.path().join("token"));
    assert_eq!(cache.token().as_deref(), Some("hf_from_env"));
    let other = tempfile::tempdir().expect("other");
    set("HF_HUB_CACHE", other.path().to_str());
    assert_eq!(
        Cache::from_env().path(),
        &other.path().to_path_buf(),
        "HF_HUB_CACHE wins over HF_HOME"
    );
    set("HF_HUB_CACHE", None);

    // `Api::new()` (candle) talks to HF_ENDPOINT with HF_TOKEN and fills $HF_HOME/hub.
    let sync = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(false)
        .build()
        .expect("sync");
    let path = sync.model(MODEL.into()).get("config.json").expect("online get");
    assert!(path.starts_with(home.path().join("hub").canonicalize().expect("cache")));
    let auth: Vec<_> = hub.requests().into_iter().filter_map(|r| r.authorization).collect();
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == "Bearer hf_from_env"),
        "{auth:?}"
    );

    // HF_HUB_OFFLINE=1: the cached file is served, nothing else, and no request goes out.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (name, value) in [("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "true")] {
        set(name, Some(value));
        hub.clear_requests();
        let sync = hf_hub::api::sync::Api::new().expect("sync");
        assert_eq!(sync.model(MODEL.into()).get("config.json").expect("cached"), path);
        let err = sync.model(MODEL.into()).get("weights.bin").expect_err("not cached");
        assert!(err.is_offline(), "{err:?}");
        assert!(err.to_string().contains("offline mode is set"), "{err}");
        assert!(sync.model(MODEL.into()).info().expect_err("offline").is_offline());
        rt.block_on(async {
            let api = hf_hub::api::tokio::Api::new().expect("tokio");
            assert_eq!(api.model(MODEL.into()).get("config.json").await.expect("cached"), path);
            let err = api
                .model(MODEL.into())
                .download("weights.bin")
                .await
                .expect_err("offline");
            assert!(err.is_offline(), "{err:?}");
        });
        assert_eq!(hub.requests(), vec![], "{name}={value} sends no request");
        set(name, None);
    }
}
