//! In-process fake Hugging Face Hub for tests and benchmarks.
//!
//! [`FakeHub::start`] binds two HTTP origins on `127.0.0.1`: the Hub itself (resolve URLs, repo info, tree
//! listing) and a separate "CDN" origin that serves LFS objects behind pre-signed-looking redirects. Both run on
//! a private tokio runtime in a background thread, so the hub works from sync tests, async tests and binaries.
//! Faults can be injected per request ([`FaultRule`]) and every request is logged ([`LoggedRequest`]).

mod faults;
mod fixtures;
mod hub;
mod log;
mod model;
mod server;
mod util;
mod wan;

pub use faults::{Fault, FaultRule};
pub use fixtures::{safetensors_file, shard_name, sharded_model};
pub use hub::FakeHub;
pub use log::{LoggedRequest, Origin};
pub use model::{default_lfs_rule, RepoKind};
pub use wan::{Bimodal, Wan};

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// Git blob SHA-1 of `content` (sha1 of `"blob <len>\0"` followed by the content), as 40 lowercase hex digits.
pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(content);
    util::hex(&hasher.finalize())
}

/// SHA-256 of `content` as 64 lowercase hex digits.
pub fn sha256_hex(content: &[u8]) -> String {
    util::hex(&Sha256::digest(content))
}

/// The Xet hash the fake Hub announces for `content` (a stand-in: sha256 of `xet:` + content).
pub fn fake_xet_hash(content: &[u8]) -> String {
    sha256_hex(&[b"xet:".as_slice(), content].concat())
}
