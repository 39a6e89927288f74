use hf_hub::{Cache, Repo, RepoType};

use crate::common::{Fixture, MODEL};

#[test]
fn repo_names_and_urls_are_hf_hubs() {
    let model = Repo::model(MODEL.to_string());
    assert_eq!(model.folder_name(), "models--org--tiny-bert");
    assert_eq!(model.revision(), "main");
    assert_eq!(model.url(), MODEL);
    assert_eq!(model.api_url(), "models/org/tiny-bert/revision/main");
    let pr = Repo::with_revision("org/set".into(), RepoType::Dataset, "refs/pr/1".into());
    assert_eq!(pr.folder_name(), "datasets--org--set");
    assert_eq!(pr.url(), "datasets/org/set");
    assert_eq!(pr.url_revision(), "refs%2Fpr%2F1");
    assert_eq!(pr.api_url(), "datasets/org/set/revision/refs%2Fpr%2F1");
    let space = Repo::space("org/app".into());
    assert_eq!(space.folder_name(), "spaces--org--app");
    assert_eq!(space.url(), "spaces/org/app");
    assert_eq!(Repo::dataset("d".into()).folder_name(), "datasets--d");
    assert_eq!(Repo::new("m".into(), RepoType::Model).folder_name(), "models--m");
}

#[test]
fn cache_repo_get_create_ref_and_token_file() {
    let f = Fixture::new();
    let cache = Cache::new(f.cache_dir());
    assert_eq!(cache.path(), &f.cache_dir());
    assert_eq!(cache.token_path(), f.dir.path().join("token"));
    std::fs::write(f.dir.path().join("token"), "hf_from_file\n").expect("token");
    assert_eq!(cache.token().as_deref(), Some("hf_from_file"));

    let repo = cache.model(MODEL.to_string());
    assert_eq!(repo.get("config.json"), None, "nothing cached yet");
    // Fill the cache through the API, then read it back without the network.
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
        .with_endpoint(f.hub.url())
        .with_progress(false)
        .build()
        .expect("api");
    let path = api.model(MODEL.to_string()).get("config.json").expect("download");
    assert_eq!(repo.get("config.json"), Some(path.clone()));
    assert_eq!(repo.get("absent.json"), None);
    assert!(repo.pointer_path(&f.commit).join("config.json").exists());
    assert!(repo
        .blob_path("0000")
        .starts_with(f.cache_dir().join("models--org--tiny-bert/blobs")));

    // A ref made by hand (as tools that pin a commit do) resolves with `get`.
    let pinned = cache.repo(Repo::with_revision(MODEL.into(), RepoType::Model, "v1".into()));
    assert_eq!(pinned.get("config.json"), None);
    pinned.create_ref(&format!("{}\n", f.commit)).expect("create ref");
    assert_eq!(pinned.get("config.json"), Some(path));
    let err = pinned.create_ref("not-a-commit").expect_err("refused");
    assert!(err.to_string().contains("not a 40-character commit hash"), "{err}");

    // Datasets and spaces have their own folders.
    assert_eq!(cache.dataset("org/tiny-set".into()).get("data.csv"), None);
    assert_eq!(cache.space("org/tiny-space".into()).get("app.py"), None);
}
