//! Which temp files survive a failed transfer: bytes cut off on their way are kept for the next
//! call to resume from; bytes that fail verification never are.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hubcache::blocking;
use hubcache::hub::transfer::TransferError;
use hubcache::{Error, FileRequest, Repo, RepoPath, Revision};
use hubcache_test_support::{sha256_hex, FakeHub, Fault, FaultRule, Origin, RepoKind};

const MIB: usize = 1 << 20;

fn weights() -> Bytes {
    Bytes::from((0..8 * MIB).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn client(hub: &FakeHub, cache: &Path) -> blocking::Hub {
    blocking::Hub::new(fast_builder(hub, cache, 1, Duration::from_secs(2))).unwrap()
}

fn request() -> FileRequest {
    FileRequest::new(
        Repo::model("org/model").unwrap(),
        Revision::new("main").unwrap(),
        RepoPath::new("model.safetensors").unwrap(),
    )
}

fn temps(cache: &Path) -> Vec<(PathBuf, u64)> {
    let blobs = cache.join("models--org--model/blobs");
    let Ok(rd) = fs::read_dir(blobs) else { return Vec::new() };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        // A running download may rename or remove an entry between the listing and here.
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect()
}

fn cdn_ranges(hub: &FakeHub) -> Vec<Option<String>> {
    hub.requests()
        .into_iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET")
        .map(|r| r.range)
        .collect()
}

#[test]
fn a_cut_off_transfer_keeps_its_temp_and_the_next_call_resumes() {
    let hub = FakeHub::start();
    let data = weights();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![("model.safetensors".into(), data.clone())],
    );
    // 3 MiB arrive, then the connection breaks on every attempt until the in-run retries give up.
    hub.inject(FaultRule::new("/lfs/", Fault::TruncateBody { after: 3 * MIB as u64 }).on_method("GET"));
    hub.inject(
        FaultRule::new("/lfs/", Fault::TruncateBody { after: 0 })
            .on_method("GET")
            .repeat(100),
    );
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let err = c.download_file(&request()).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.hints().iter().any(|h| h.contains("resumes")), "{:?}", err.hints());
    let kept = temps(cache.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].1, 3 * MIB as u64, "every byte received was written");
    assert!(!cache
        .path()
        .join(format!("models--org--model/blobs/{}", sha256_hex(&data)))
        .exists());

    hub.clear_faults();
    hub.clear_requests();
    let path = c.download_file(&request()).unwrap();
    assert!(fs::read(path).unwrap() == data);
    assert_eq!(cdn_ranges(&hub), [Some(format!("bytes={}-", 3 * MIB))]);
    assert!(temps(cache.path()).is_empty());
}

#[test]
fn wrong_bytes_leave_no_temp_to_resume_from() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![("model.safetensors".into(), weights())],
    );
    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let err = c.download_file(&request()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hash { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(temps(cache.path()).is_empty(), "{:?}", temps(cache.path()));
    hub.clear_requests();
    c.download_file(&request()).unwrap();
    assert_eq!(cdn_ranges(&hub), [None], "the next call starts from zero");
}
