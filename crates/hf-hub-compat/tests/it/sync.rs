use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::api::Progress;
use hf_hub::{Repo, RepoType};

use crate::common::{snapshot_path, Fixture, CONFIG, MODEL};

fn api(f: &Fixture) -> Api {
    ApiBuilder::new()
        .with_endpoint(f.hub.url())
        .with_cache_dir(f.cache_dir())
        .with_token(None)
        .with_progress(false)
        .build()
        .expect("api")
}

#[test]
fn candle_style_get_downloads_once_then_reads_the_cache() {
    let f = Fixture::new();
    let api = api(&f);
    // candle: `api.repo(Repo::with_revision(model_id, RepoType::Model, revision))`, then `.get(file)`.
    let repo: ApiRepo = api.repo(Repo::with_revision(MODEL.into(), RepoType::Model, "main".into()));
    let config = repo.get("config.json").expect("config");
    assert_eq!(
        config,
        snapshot_path(&f.cache_dir(), "models--org--tiny-bert", &f.commit, "config.json")
    );
    assert_eq!(std::fs::read(&config).expect("read"), CONFIG);
    let weights = repo.get("model.safetensors").expect("weights");
    assert_eq!(std::fs::read(&weights).expect("read"), f.weights);
    let nested = api.model(MODEL.into()).get("sub/dir/vocab.txt").expect("nested");
    assert!(nested.ends_with("sub/dir/vocab.txt"));

    // Python's layout: the snapshot entry links to a blob named by its etag.
    assert!(std::fs::symlink_metadata(&weights)
        .expect("meta")
        .file_type()
        .is_symlink());

    let before = f.requests().len();
    assert_eq!(repo.get("config.json").expect("cached"), config);
    assert_eq!(
        api.model(MODEL.into()).get("model.safetensors").expect("cached"),
        weights
    );
    assert_eq!(f.requests().len(), before, "`get` of a cached file sends no request");
}

#[test]
fn download_fetches_and_dataset_space_repos_work() {
    let f = Fixture::new();
    let api = api(&f);
    let path = api.model(MODEL.into()).download("config.json").expect("download");
    assert_eq!(std::fs::read(path).expect("read"), CONFIG);
    let data = api.dataset("org/tiny-set".into()).get("data.csv").expect("dataset");
    assert!(data.starts_with(
        f.cache_dir()
            .canonicalize()
            .expect("cache")
            .join("datasets--org--tiny-set")
    ));
    let app = api.space("org/tiny-space".into()).get("app.py").expect("space");
    assert_eq!(std::fs::read(app).expect("read"), b"print('hi')\n");
    // `download` of a cached file checks the Hub (HEAD) but does not fetch the bytes again.
    let gets = f.content_gets();
    api.model(MODEL.into()).download("config.json").expect("again");
    assert_eq!(f.content_gets(), gets);
}

#[derive(Default)]
struct Recorder {
    inits: Vec<(usize, String)>,
    bytes: usize,
    finished: usize,
}

impl Progress for Recorder {
    fn init(&mut self, size: usize, filename: &str) {
        self.inits.push((size, filename.to_string()));
    }
    fn update(&mut self, size: usize) {
        self.bytes += size;
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

#[test]
fn download_with_progress_reports_to_the_callers_progress() {
    let f = Fixture::new();
    let api = api(&f);
    let mut rec = Recorder::default();
    let path = api
        .model(MODEL.into())
        .download_with_progress("model.safetensors", &mut rec)
        .expect("download");
    assert_eq!(std::fs::read(path).expect("read"), f.weights);
    assert_eq!(rec.inits, vec![(f.weights.len(), "model.safetensors".to_string())]);
    assert_eq!(rec.bytes, f.weights.len());
    assert_eq!(rec.finished, 1);
    // A progress bar is accepted as in hf-hub (hidden: not a terminal).
    let bar = indicatif::ProgressBar::hidden();
    api.model(MODEL.into())
        .download_with_progress("config.json", bar.clone())
        .expect("with a bar");
}

impl Progress for &mut Recorder {
    fn init(&mut self, size: usize, filename: &str) {
        (**self).init(size, filename)
    }
    fn update(&mut self, size: usize) {
        (**self).update(size)
    }
    fn finish(&mut self) {
        (**self).finish()
    }
}

#[test]
fn info_lists_siblings_and_sha() {
    let f = Fixture::new();
    let info = api(&f).model(MODEL.into()).info().expect("info");
    assert_eq!(info.sha, f.commit);
    let mut names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "model.safetensors",
            "sub/dir/vocab.txt",
            "tokenizer.json"
        ]
    );
}

#[test]
fn url_token_and_user_agent_go_out_as_in_hf_hub() {
    let f = Fixture::new();
    let api = ApiBuilder::from_env()
        .with_endpoint(format!("{}/", f.hub.url()))
        .with_cache_dir(f.cache_dir())
        .with_token(Some("hf_secret".into()))
        .with_user_agent("origin", "candle")
        .with_retries(2)
        .with_progress(false)
        .build()
        .expect("api");
    let repo = api.repo(Repo::with_revision(MODEL.into(), RepoType::Model, "refs/pr/1".into()));
    assert_eq!(
        repo.url("config.json"),
        format!("{}/{MODEL}/resolve/refs%2Fpr%2F1/config.json", f.hub.url())
    );
    api.model(MODEL.into()).get("config.json").expect("get");
    let head = f
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/resolve/"))
        .expect("a resolve request");
    assert_eq!(head.authorization.as_deref(), Some("Bearer hf_secret"));
    let ua = head.user_agent.unwrap_or_default();
    assert!(ua.contains("hf-hub/0.4") && ua.contains("origin/candle"), "{ua}");
}

#[test]
fn errors_keep_hf_hub_variants_and_give_the_status() {
    let f = Fixture::new();
    let api = api(&f);
    let err = api.model(MODEL.into()).get("absent.bin").expect_err("no such file");
    assert!(matches!(err, ApiError::RequestError(_)), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert!(err.is_not_found());
    assert!(err.hubcache_error().is_some());
    if let ApiError::RequestError(e) = &err {
        assert_eq!(e.status(), Some(http::StatusCode::NOT_FOUND));
    }
    assert!(err.to_string().contains("status code 404"), "{err}");

    let err = api.model("org/nope".into()).info().expect_err("no such repo");
    assert_eq!(err.status(), Some(404));
    assert!(err.hubcache_error().is_some_and(hubcache::Error::is_not_found));

    // A name hf-hub would send and hubcache refuses fails before any request, with the reason.
    let before = f.requests().len();
    let err = api.model(MODEL.into()).get("../escape").expect_err("refused");
    assert!(matches!(err, ApiError::Hubcache(_)), "{err:?}");
    assert!(err.to_string().contains("../escape"), "{err}");
    assert_eq!(f.requests().len(), before);
}

#[test]
fn settings_hf_hub_takes_and_hubcache_refuses_are_named() {
    let f = Fixture::new();
    let err = ApiBuilder::new()
        .with_endpoint("huggingface.co".into())
        .with_cache_dir(f.cache_dir())
        .build()
        .expect_err("no scheme");
    assert!(matches!(err, ApiError::InvalidSetting(_)));
    assert!(
        err.to_string().contains("endpoint") && err.to_string().contains("`huggingface.co`"),
        "{err}"
    );
    let err = ApiBuilder::new()
        .with_endpoint(f.hub.url())
        .with_token(Some("  ".into()))
        .build()
        .expect_err("blank token");
    assert!(err.to_string().contains("token"), "{err}");
    let err = ApiBuilder::new()
        .with_endpoint(f.hub.url())
        .with_cache_dir("".into())
        .build()
        .expect_err("empty cache");
    assert!(err.to_string().contains("cache folder"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_api_works_inside_a_tokio_runtime() {
    // Some servers call the blocking API from async code; hf-hub (ureq) allows it.
    let f = Fixture::new();
    let path = api(&f).model(MODEL.into()).get("config.json").expect("get");
    assert_eq!(std::fs::read(path).expect("read"), CONFIG);
    let info = api(&f).model(MODEL.into()).info().expect("info");
    assert_eq!(info.sha, f.commit);
}
