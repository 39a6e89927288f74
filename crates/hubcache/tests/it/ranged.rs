//! Ranged transfers: parts over several connections, each fault on one part proven fired by the
//! request log, servers that do not serve ranges, expiring signed URLs, resume from a parts file.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hubcache::hub::transfer::{RangeSet, RangedConfig, TransferError};
use hubcache::{blocking, Error, FileRequest, Repo, RepoPath, Revision};
use hubcache_test_support::{sha256_hex, FakeHub, Fault, FaultRule, LoggedRequest, Origin, RepoKind};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 12 * MIB;
const PART: u64 = MIB;

fn weights() -> Bytes {
    Bytes::from((0..SIZE as usize).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn setup() -> (FakeHub, Bytes, String) {
    let hub = FakeHub::start();
    let data = weights();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![("model.safetensors".into(), data.clone())],
    );
    let etag = sha256_hex(&data);
    (hub, data, etag)
}

fn client(hub: &FakeHub, cache: &Path, retries: u32) -> blocking::Hub {
    let ranged = RangedConfig {
        max_connections: 4,
        min_size: 2 * MIB,
        part_size: PART,
        // Loopback is a fast link: these tests are about several connections at once.
        fast_link: f64::INFINITY,
    };
    blocking::Hub::new(fast_builder(hub, cache, retries, Duration::from_secs(1)).ranged(ranged)).unwrap()
}

fn request() -> FileRequest {
    FileRequest::new(
        Repo::model("org/model").unwrap(),
        Revision::new("main").unwrap(),
        RepoPath::new("model.safetensors").unwrap(),
    )
}

fn blobs_dir(cache: &Path) -> PathBuf {
    cache.join("models--org--model/blobs")
}

/// Every file of `blobs/` whose name is not the blob itself.
fn leftovers(cache: &Path, etag: &str) -> Vec<String> {
    let Ok(rd) = fs::read_dir(blobs_dir(cache)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != etag)
        .collect();
    names.sort();
    names
}

fn cdn_gets(hub: &FakeHub) -> Vec<LoggedRequest> {
    hub.requests()
        .into_iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET")
        .collect()
}

/// Bytes the answered (206) ranged GETs asked for.
fn ranged_bytes(gets: &[LoggedRequest]) -> u64 {
    gets.iter()
        .filter(|r| r.status == 206)
        .filter_map(LoggedRequest::byte_range)
        .map(|(a, b)| b - a)
        .sum()
}

fn assert_placed(cache: &Path, path: &Path, data: &Bytes, etag: &str) {
    assert!(fs::read(path).unwrap() == data[..], "the file is correct");
    assert!(leftovers(cache, etag).is_empty(), "{:?}", leftovers(cache, etag));
}

#[test]
fn a_large_file_arrives_in_parts_over_several_connections() {
    let (hub, data, etag) = setup();
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert!(gets.len() >= 2, "{gets:?}");
    assert!(
        gets.iter().all(|g| g.status == 206 && g.byte_range().is_some()),
        "{gets:?}"
    );
    // The parts cover the file exactly once.
    let mut covered = RangeSet::new();
    for g in &gets {
        let (a, b) = g.byte_range().unwrap();
        covered.insert(a, b);
    }
    assert_eq!(covered.ranges(), &[(0, SIZE)]);
    assert_eq!(ranged_bytes(&gets), SIZE, "no byte asked twice");
}

#[test]
fn a_server_that_ignores_range_gets_one_plain_stream() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::IgnoreRange).repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 2, "one probe, then one plain stream: {gets:?}");
    assert_eq!(
        (gets[0].status, gets[0].range.is_some()),
        (200, true),
        "the probe was ignored"
    );
    assert_eq!((gets[1].status, gets[1].range.as_deref()), (200, None));
}

#[test]
fn a_server_that_announces_no_accept_ranges_gets_one_plain_stream() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::NoAcceptRanges).repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 2, "one probe, then one plain stream: {gets:?}");
    assert_eq!((gets[0].status, gets[0].range.is_some()), (206, true), "the probe");
    assert_eq!((gets[1].status, gets[1].range.as_deref()), (200, None));
    assert!(leftovers(cache.path(), &etag).is_empty());
}

#[test]
fn a_server_that_lies_about_the_size_in_a_part_gets_one_plain_stream() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::WrongTotal { total: SIZE + 1 }).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 2, "one lying probe, then one plain stream: {gets:?}");
    assert_eq!((gets[1].status, gets[1].range.as_deref()), (200, None));
}

#[test]
fn a_signed_url_that_expires_before_the_plain_stream_is_resolved_again() {
    let (hub, data, etag) = setup();
    // The probe is ignored (a 200 with the whole file): the plain stream that follows finds
    // the location expired once.
    hub.inject(FaultRule::new("/lfs/", Fault::IgnoreRange).on_method("GET"));
    hub.inject(
        FaultRule::new(
            "/lfs/",
            Fault::Status {
                status: 403,
                retry_after: None,
            },
        )
        .on_method("GET"),
    );
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 0).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let reqs = hub.requests();
    let heads = reqs
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/resolve/"))
        .count();
    assert_eq!(heads, 2, "one HEAD, then one more after the 403: {reqs:?}");
    let statuses: Vec<u16> = cdn_gets(&hub).iter().map(|g| g.status).collect();
    assert_eq!(statuses, vec![200, 403, 200], "ignored probe, expired, plain stream");
}

#[test]
fn a_server_that_stops_honouring_range_after_the_first_part() {
    let (hub, data, etag) = setup();
    // The first ranged GET is served; every later one gets the whole file with a 200.
    hub.inject(FaultRule::new("/lfs/", Fault::Delay { millis: 0 }).on_method("GET"));
    hub.inject(FaultRule::new("/lfs/", Fault::IgnoreRange).repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert_eq!(gets[0].status, 206, "{gets:?}");
    assert!(
        gets.iter().any(|g| g.status == 200 && g.range.is_some()),
        "a ranged GET was answered with the whole file: {gets:?}"
    );
    let last = gets.last().unwrap();
    assert_eq!(
        (last.status, last.range.as_deref()),
        (200, None),
        "then one plain stream"
    );
}

#[test]
fn a_reset_in_the_middle_of_one_part_resumes_that_part_only() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::TruncateBody { after: 300_000 }).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    // The cut part was asked again from where it stopped: a range not on a part boundary.
    let resumed: Vec<_> = gets
        .iter()
        .filter_map(LoggedRequest::byte_range)
        .filter(|(a, _)| a % PART != 0)
        .collect();
    assert_eq!(resumed.len(), 1, "{gets:?}");
    assert!(
        ranged_bytes(&gets) < SIZE + PART,
        "only the rest of one part fetched again: {gets:?}"
    );
}

#[test]
fn a_500_on_one_part_retries_that_part() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::Delay { millis: 0 }).on_method("GET"));
    hub.inject(
        FaultRule::new(
            "/lfs/",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        )
        .on_method("GET"),
    );
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    let failed: Vec<_> = gets.iter().filter(|g| g.status == 500).collect();
    assert_eq!(failed.len(), 1, "the fault fired: {gets:?}");
    let again = gets
        .iter()
        .filter(|g| g.status == 206 && g.range == failed[0].range)
        .count();
    assert_eq!(again, 1, "that part alone was asked again: {gets:?}");
    assert_eq!(ranged_bytes(&gets), SIZE);
}

#[test]
fn a_stalled_part_is_cancelled_and_asked_again() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::Delay { millis: 0 }).on_method("GET"));
    hub.inject(FaultRule::new("/lfs/", Fault::Stall { after: 100_000 }).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    let resumed = gets
        .iter()
        .filter_map(LoggedRequest::byte_range)
        .filter(|(a, _)| a % PART != 0)
        .count();
    assert!(resumed >= 1, "the stalled part resumed mid-part: {gets:?}");
}

#[test]
fn corrupt_bytes_in_one_part_fetch_the_file_again_once() {
    let (hub, data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    assert_eq!(ranged_bytes(&cdn_gets(&hub)), 2 * SIZE, "the whole file twice");
}

#[test]
fn corrupt_bytes_every_time_are_an_error_and_nothing_is_placed() {
    let (hub, _data, etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes).on_method("GET").repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let err = client(&hub, cache.path(), 2).download_file(&request()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Transfer {
                source: TransferError::Hash { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!blobs_dir(cache.path()).join(&etag).exists(), "nothing placed");
    assert!(
        leftovers(cache.path(), &etag).is_empty(),
        "{:?}",
        leftovers(cache.path(), &etag)
    );
    assert_eq!(ranged_bytes(&cdn_gets(&hub)), 2 * SIZE, "fetched again once, not more");
}

#[test]
fn a_signed_url_that_expires_mid_file_is_resolved_again() {
    let (hub, data, etag) = setup();
    hub.inject(
        FaultRule::new("/lfs/", Fault::Delay { millis: 0 })
            .on_method("GET")
            .repeat(2),
    );
    hub.inject(
        FaultRule::new(
            "/lfs/",
            Fault::Status {
                status: 403,
                retry_after: None,
            },
        )
        .on_method("GET"),
    );
    let cache = tempfile::tempdir().unwrap();
    let path = client(&hub, cache.path(), 0).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let reqs = hub.requests();
    let heads = reqs
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/resolve/"))
        .count();
    assert_eq!(heads, 2, "one HEAD, then one more after the 403: {reqs:?}");
    assert_eq!(cdn_gets(&hub).iter().filter(|g| g.status == 403).count(), 1);
}

#[test]
fn a_cut_off_parallel_transfer_leaves_a_parts_file_and_the_next_run_fetches_only_the_holes() {
    let (hub, data, etag) = setup();
    // Without retries, parts after the first two stall until the run gives up; those two
    // are kept.
    hub.inject(
        FaultRule::new("/lfs/", Fault::Delay { millis: 0 })
            .on_method("GET")
            .repeat(2),
    );
    hub.inject(
        FaultRule::new("/lfs/", Fault::Stall { after: 0 })
            .on_method("GET")
            .repeat(1000),
    );
    let cache = tempfile::tempdir().unwrap();
    let err = client(&hub, cache.path(), 0).download_file(&request()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Transfer {
                source: TransferError::CutOff { kept: true, .. },
                ..
            }
        ),
        "{err}"
    );
    let left = leftovers(cache.path(), &etag);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|n| n.ends_with(".parts.incomplete")), "{left:?}");
    assert!(left.iter().any(|n| n.ends_with(".ranges.incomplete")), "{left:?}");
    // Nothing a contiguous-prefix reader (old hubcache, Python) would adopt.
    let prefix_like = |n: &str| {
        n.strip_prefix(&etag)
            .and_then(|r| r.strip_suffix(".incomplete"))
            .is_some_and(|r| r.is_empty() || r.len() == 9)
    };
    assert!(!left.iter().any(|n| prefix_like(n)), "{left:?}");
    let record = fs::read_to_string(
        blobs_dir(cache.path()).join(left.iter().find(|n| n.ends_with(".ranges.incomplete")).unwrap()),
    )
    .unwrap();
    let held = RangeSet::decode(&record, SIZE).unwrap();
    assert!(held.covered() > 0, "{record}");

    hub.clear_faults();
    hub.clear_requests();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    for g in &gets {
        let (a, b) = g.byte_range().unwrap();
        for &(s, e) in held.ranges() {
            assert!(b <= s || a >= e, "{a}-{b} asks for held bytes {s}-{e}");
        }
    }
    assert_eq!(ranged_bytes(&gets), SIZE - held.covered(), "only the holes: {gets:?}");
}

#[test]
fn a_lying_parts_record_is_caught_by_the_hash_and_fetched_again() {
    let (hub, data, etag) = setup();
    let cache = tempfile::tempdir().unwrap();
    // A record claiming the whole file over a file of zeros.
    let blobs = blobs_dir(cache.path());
    fs::create_dir_all(&blobs).unwrap();
    fs::write(
        blobs.join(format!("{etag}.0badf00d.parts.incomplete")),
        vec![0u8; SIZE as usize],
    )
    .unwrap();
    let mut all = RangeSet::new();
    all.insert(0, SIZE);
    fs::write(
        blobs.join(format!("{etag}.0badf00d.ranges.incomplete")),
        all.encode(SIZE),
    )
    .unwrap();
    let path = client(&hub, cache.path(), 2).download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    assert_eq!(ranged_bytes(&cdn_gets(&hub)), SIZE, "fetched once, from nothing");
}

#[test]
fn one_connection_means_one_plain_stream() {
    let (hub, data, etag) = setup();
    let cache = tempfile::tempdir().unwrap();
    let builder = fast_builder(&hub, cache.path(), 2, Duration::from_secs(1)).max_connections(1);
    let path = blocking::Hub::new(builder).unwrap().download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range, None);
}

#[test]
fn a_fast_first_connection_keeps_one_connection_and_fetches_the_rest_in_one_get() {
    let (hub, data, etag) = setup();
    let cache = tempfile::tempdir().unwrap();
    // Every first connection counts as fast here.
    let ranged = RangedConfig {
        max_connections: 4,
        min_size: 2 * MIB,
        part_size: PART,
        fast_link: 0.0,
    };
    let c = blocking::Hub::new(fast_builder(&hub, cache.path(), 2, Duration::from_secs(1)).ranged(ranged)).unwrap();
    let path = c.download_file(&request()).unwrap();
    assert_placed(cache.path(), &path, &data, &etag);
    let gets = cdn_gets(&hub);
    let ranges: Vec<(u64, u64)> = gets.iter().map(|g| g.byte_range().unwrap()).collect();
    // Parts one after another while the first connection is measured (2 MiB or 50 ms; with
    // 1 MiB parts a few go by), then the rest at once.
    assert_eq!(ranges[0], (0, PART), "{gets:?}");
    assert!(gets.len() < (SIZE / PART) as usize, "{ranges:?}");
    let last = ranges.last().unwrap();
    assert!(
        last.1 == SIZE && last.1 - last.0 > PART,
        "the rest in one GET: {ranges:?}"
    );
    let mut covered = RangeSet::new();
    for &(a, b) in &ranges {
        covered.insert(a, b);
    }
    assert_eq!(covered.ranges(), &[(0, SIZE)]);
}

#[test]
fn a_local_dir_download_of_a_large_file_comes_in_parts_too() {
    let (hub, data, _etag) = setup();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut req = request();
    req.local_dir = Some(dir.path().to_path_buf());
    let path = client(&hub, cache.path(), 2).download_file(&req).unwrap();
    assert_eq!(path, dir.path().join("model.safetensors"));
    assert!(fs::read(&path).unwrap() == data, "the file is right");
    let gets = cdn_gets(&hub);
    assert!(
        gets.len() >= 2 && gets.iter().all(|g| g.status == 206),
        "fetched in parts: {gets:?}"
    );
    // Nothing but the metadata file is left beside it.
    let meta_dir = dir.path().join(".cache/huggingface/download");
    let left: Vec<String> = fs::read_dir(&meta_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".metadata") && !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_local_dir_download_whose_parts_never_check_out_leaves_nothing() {
    let (hub, _data, _etag) = setup();
    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes).on_method("GET").repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut req = request();
    req.local_dir = Some(dir.path().to_path_buf());
    let err = client(&hub, cache.path(), 2).download_file(&req).unwrap_err();
    assert!(format!("{err:?}").contains("Hash"), "{err:?}");
    assert!(
        cdn_gets(&hub).iter().any(|g| g.status == 206),
        "the fault fired on parts"
    );
    assert!(!dir.path().join("model.safetensors").exists(), "nothing placed");
    let meta_dir = dir.path().join(".cache/huggingface/download");
    let left: Vec<String> = fs::read_dir(&meta_dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".incomplete") || n.contains(".ranges"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
