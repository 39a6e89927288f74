use std::path::{Path, PathBuf};

use bytes::Bytes;
use hubcache_test_support::{FakeHub, LoggedRequest, RepoKind};

pub const MODEL: &str = "org/tiny-bert";
pub const CONFIG: &[u8] = b"{\"hidden_size\": 8}\n";

pub struct Fixture {
    pub hub: FakeHub,
    pub commit: String,
    pub weights: Vec<u8>,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let hub = FakeHub::start();
        // Large enough to be LFS (served from the CDN origin through a redirect).
        let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let commit = hub.commit(
            RepoKind::Model,
            MODEL,
            "main",
            vec![
                ("config.json".into(), Bytes::from_static(CONFIG)),
                ("tokenizer.json".into(), Bytes::from_static(b"{\"version\": \"1.0\"}")),
                ("model.safetensors".into(), Bytes::from(weights.clone())),
                ("sub/dir/vocab.txt".into(), Bytes::from_static(b"[PAD]\n[UNK]\n")),
            ],
        );
        hub.commit(
            RepoKind::Dataset,
            "org/tiny-set",
            "main",
            vec![("data.csv".into(), Bytes::from_static(b"a,b\n1,2\n"))],
        );
        hub.commit(
            RepoKind::Space,
            "org/tiny-space",
            "main",
            vec![("app.py".into(), Bytes::from_static(b"print('hi')\n"))],
        );
        Fixture {
            hub,
            commit,
            weights,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The `hub/` cache folder (its parent holds the token file, as in hf-hub).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.hub.requests()
    }

    pub fn content_gets(&self) -> usize {
        self.hub.requests().iter().filter(|r| r.is_content_get()).count()
    }
}

/// The snapshot path hf-hub returns: `<cache>/models--org--name/snapshots/<commit>/<file>`.
pub fn snapshot_path(cache: &Path, folder: &str, commit: &str, file: &str) -> PathBuf {
    cache
        .canonicalize()
        .expect("cache exists")
        .join(folder)
        .join("snapshots")
        .join(commit)
        .join(file)
}
