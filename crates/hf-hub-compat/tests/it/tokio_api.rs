use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hf_hub::api::tokio::{Api, ApiBuilder, ApiError, ApiRepo, Progress};
use hf_hub::{Cache, Repo, RepoType};

use crate::common::{snapshot_path, Fixture, CONFIG, MODEL};

fn builder(f: &Fixture) -> ApiBuilder {
    ApiBuilder::from_cache(Cache::new(f.cache_dir()))
        .with_endpoint(f.hub.url())
        .with_token(None)
        .with_progress(false)
}

#[tokio::test]
async fn tei_style_info_then_get() {
    let f = Fixture::new();
    // TEI: from_env/with_token/with_cache_dir/with_progress/with_user_agent, `info`, then `get`.
    let api: Api = builder(&f)
        .with_cache_dir(f.cache_dir())
        .with_user_agent("origin", "tei")
        .with_retries(1)
        .high()
        .with_max_files(4)
        .with_chunk_size(Some(1 << 20))
        .build()
        .expect("api");
    let repo: ApiRepo = api.repo(Repo::with_revision(MODEL.into(), RepoType::Model, "main".into()));
    let info = repo.info().await.expect("info");
    assert_eq!(info.sha, f.commit);
    assert!(info.siblings.iter().any(|s| s.rfilename == "model.safetensors"));
    let config = repo.get("config.json").await.expect("config");
    assert_eq!(
        config,
        snapshot_path(&f.cache_dir(), "models--org--tiny-bert", &f.commit, "config.json")
    );
    assert_eq!(tokio::fs::read(&config).await.expect("read"), CONFIG);
    let weights = api
        .model(MODEL.into())
        .download("model.safetensors")
        .await
        .expect("weights");
    assert_eq!(tokio::fs::read(&weights).await.expect("read"), f.weights);
    assert!(f
        .requests()
        .iter()
        .any(|r| r.user_agent.as_deref().is_some_and(|ua| ua.contains("origin/tei"))));

    let before = f.requests().len();
    assert_eq!(repo.get("config.json").await.expect("cached"), config);
    assert_eq!(f.requests().len(), before, "`get` of a cached file sends no request");
    assert_eq!(
        repo.url("config.json"),
        format!("{}/{MODEL}/resolve/main/config.json", f.hub.url())
    );
}

#[derive(Clone, Default)]
struct Counter {
    size: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl Progress for Counter {
    async fn init(&mut self, size: usize, _filename: &str) {
        self.size.store(size, Ordering::SeqCst);
    }
    async fn update(&mut self, size: usize) {
        self.bytes.fetch_add(size, Ordering::SeqCst);
    }
    async fn finish(&mut self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn download_with_progress_and_other_repo_types() {
    let f = Fixture::new();
    let api = builder(&f).build().expect("api");
    let counter = Counter::default();
    let path = api
        .model(MODEL.into())
        .download_with_progress("model.safetensors", counter.clone())
        .await
        .expect("download");
    assert_eq!(tokio::fs::read(path).await.expect("read"), f.weights);
    assert_eq!(counter.size.load(Ordering::SeqCst), f.weights.len());
    assert_eq!(counter.bytes.load(Ordering::SeqCst), f.weights.len());
    assert_eq!(counter.finished.load(Ordering::SeqCst), 1);
    api.model(MODEL.into())
        .download_with_progress("config.json", indicatif::ProgressBar::hidden())
        .await
        .expect("with a bar");
    api.dataset("org/tiny-set".into())
        .get("data.csv")
        .await
        .expect("dataset");
    api.space("org/tiny-space".into()).get("app.py").await.expect("space");
}

#[tokio::test]
async fn errors_keep_hf_hub_variants_and_give_the_status() {
    let f = Fixture::new();
    let api = builder(&f).build().expect("api");
    let err = api
        .model(MODEL.into())
        .get("absent.bin")
        .await
        .expect_err("no such file");
    // The pattern dynamo uses on hf-hub's reqwest error.
    match &err {
        ApiError::RequestError(e) => assert_eq!(e.status(), Some(http::StatusCode::NOT_FOUND)),
        other => panic!("expected RequestError, got {other:?}"),
    }
    assert_eq!(err.status(), Some(404));
    let err = api.model("org/nope".into()).info().await.expect_err("no repo");
    assert!(err.is_not_found(), "{err:?}");
    let err = ApiBuilder::new()
        .with_endpoint("ftp://x".into())
        .build()
        .expect_err("refused");
    assert!(matches!(err, ApiError::InvalidSetting(_)), "{err:?}");
}

#[tokio::test]
async fn unreachable_hub_is_a_request_error() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("dir");
    let api = ApiBuilder::from_cache(Cache::new(dir.path().join("hub")))
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_retries(0)
        .with_progress(false)
        .build()
        .expect("api");
    let err = api
        .model(MODEL.into())
        .get("config.json")
        .await
        .expect_err("nobody there");
    match &err {
        ApiError::RequestError(e) => assert!(e.is_connect(), "{e}"),
        other => panic!("expected RequestError, got {other:?}"),
    }
    assert_eq!(err.status(), None);
}
