//! Content digests: which digest an etag names, one streaming hasher (inline or on its own
//! thread), whole-file hashing and hex. Downloads, `cache verify`, bundles, add-folder, sync and
//! the mirror all hash through here, so "does this content match its blob name" has one answer.
//!
//! A blob name (etag) of 64 hex digits is the SHA-256 of the content (LFS files); one of 40 hex
//! digits is the git blob SHA-1 (`blob <size>\0` followed by the content). Any other name cannot
//! be checked: callers get `None` from [`DigestKind::for_etag`] and must decide explicitly.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// Bytes read at a time when hashing from disk.
const READ_CHUNK: usize = 1 << 20;

/// The digest algorithms blob names use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    /// SHA-256 of the content (LFS files; 64 hex).
    Sha256,
    /// Git blob SHA-1: `blob <size>\0` + content (regular files; 40 hex).
    GitSha1,
}

impl DigestKind {
    /// The digest an etag names, or `None` when its shape names none.
    pub fn for_etag(etag: &str) -> Option<DigestKind> {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Some(DigestKind::Sha256),
            40 if hex => Some(DigestKind::GitSha1),
            _ => None,
        }
    }

    /// `sha256` or `git-sha1`.
    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Sha256 => "sha256",
            DigestKind::GitSha1 => "git-sha1",
        }
    }
}

impl fmt::Display for DigestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expected digest: its kind and lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The algorithm.
    pub kind: DigestKind,
    /// Lower-case hex.
    pub hex: String,
}

impl Digest {
    /// The digest an etag-like name stands for, if it is one.
    pub fn from_etag(name: &str) -> Option<Digest> {
        DigestKind::for_etag(name).map(|kind| Digest {
            kind,
            hex: name.to_ascii_lowercase(),
        })
    }

    /// Whether `actual` (hex, any case) is this digest.
    pub fn matches(&self, actual: &str) -> bool {
        actual.eq_ignore_ascii_case(&self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.hex)
    }
}

/// What a [`Hasher`] computed: each digest it was asked for, in lower-case hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256 of the content.
    pub sha256: Option<String>,
    /// Git blob SHA-1.
    pub git_sha1: Option<String>,
}

impl Digests {
    /// The digest of one kind, if it was computed.
    pub fn get(&self, kind: DigestKind) -> Option<&str> {
        match kind {
            DigestKind::Sha256 => self.sha256.as_deref(),
            DigestKind::GitSha1 => self.git_sha1.as_deref(),
        }
    }

    /// Whether the content is the blob named `etag` (false when that digest was not computed
    /// or the name names no digest).
    pub fn matches_etag(&self, etag: &str) -> bool {
        DigestKind::for_etag(etag)
            .and_then(|k| self.get(k))
            .is_some_and(|d| d.eq_ignore_ascii_case(etag))
    }
}

/// A streaming hasher computing SHA-256, git blob SHA-1, or both in one pass.
#[derive(Clone)]
pub struct Hasher {
    sha256: Option<Sha256>,
    git: Option<Sha1>,
    /// How it was made, for [`Hasher::reset`].
    spec: (bool, Option<u64>),
}

impl Hasher {
    fn with(sha256: bool, git_size: Option<u64>) -> Hasher {
        Hasher {
            sha256: sha256.then(Sha256::new),
            git: git_size.map(|size| {
                let mut h = Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                h
            }),
            spec: (sha256, git_size),
        }
    }

    /// SHA-256 only.
    pub fn sha256() -> Hasher {
        Hasher::with(true, None)
    }

    /// Git blob SHA-1 of content of exactly `size` bytes.
    pub fn git_sha1(size: u64) -> Hasher {
        Hasher::with(false, Some(size))
    }

    /// Both digests of content of exactly `size` bytes.
    pub fn both(size: u64) -> Hasher {
        Hasher::with(true, Some(size))
    }

    /// The hasher for one kind; `None` for git-sha1 when the size is not known yet.
    pub fn for_kind(kind: DigestKind, size: Option<u64>) -> Option<Hasher> {
        match kind {
            DigestKind::Sha256 => Some(Hasher::sha256()),
            DigestKind::GitSha1 => size.map(Hasher::git_sha1),
        }
    }

    /// Feeds content.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.git {
            h.update(data);
        }
    }

    /// Starts over, as if freshly made.
    pub fn reset(&mut self) {
        *self = Hasher::with(self.spec.0, self.spec.1);
    }

    /// The digests of everything fed.
    pub fn finish(self) -> Digests {
        Digests {
            sha256: self.sha256.map(|h| hex(&h.finalize())),
            git_sha1: self.git.map(|h| hex(&h.finalize())),
        }
    }
}

enum Msg {
    Data(Bytes),
    Reset,
}

/// A [`Hasher`] on its own thread, fed through a bounded queue, so hashing overlaps the I/O
/// instead of following it; memory is bounded by `queue` chunks in flight.
pub struct HashThread {
    tx: SyncSender<Msg>,
    handle: JoinHandle<io::Result<Digests>>,
}

impl HashThread {
    /// Starts the thread. `first` runs on it before any queued chunk (to hash bytes already on
    /// disk); its error is reported by [`HashThread::finish`] unless a reset came after it.
    pub fn spawn<F>(mut hasher: Hasher, queue: usize, first: F) -> HashThread
    where
        F: FnOnce(&mut Hasher) -> io::Result<()> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Msg>(queue.max(1));
        let handle = std::thread::spawn(move || {
            let mut failed = first(&mut hasher).err();
            for msg in rx {
                match msg {
                    Msg::Data(b) if failed.is_none() => hasher.update(&b),
                    Msg::Data(_) => {}
                    Msg::Reset => {
                        hasher.reset();
                        failed = None;
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(hasher.finish()),
            }
        });
        HashThread { tx, handle }
    }

    /// Queues a chunk (waits while the queue is full).
    pub fn update(&self, data: Bytes) {
        // A send fails only if the thread is gone; `finish` reports that.
        let _ = self.tx.send(Msg::Data(data));
    }

    /// Starts the digest over (after the chunks already queued).
    pub fn reset(&self) {
        let _ = self.tx.send(Msg::Reset);
    }

    /// Waits for the queued chunks and returns the digests.
    pub fn finish(self) -> io::Result<Digests> {
        drop(self.tx);
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the hasher thread panicked")))
    }
}

/// Hashes `read` to its end with `hasher`; returns the digests and the bytes read.
pub fn hash_reader(mut read: impl Read, mut hasher: Hasher) -> io::Result<(Digests, u64)> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match read.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finish(), total))
}

/// The digest of one kind of a whole file, read from disk.
pub fn hash_file(path: &Path, kind: DigestKind) -> io::Result<String> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let hasher = Hasher::for_kind(kind, Some(size)).unwrap_or_else(|| Hasher::git_sha1(size));
    let (digests, read) = hash_reader(f, hasher)?;
    changed_while_read(path, size, read)?;
    digests
        .get(kind)
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("digest not computed"))
}

/// Both digests of a whole file in one pass: (git blob sha1, sha256, size).
pub fn hash_file_both(path: &Path) -> io::Result<(String, String, u64)> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let (digests, read) = hash_reader(f, Hasher::both(size))?;
    changed_while_read(path, size, read)?;
    Ok((
        digests.git_sha1.unwrap_or_default(),
        digests.sha256.unwrap_or_default(),
        size,
    ))
}

/// Whether the file at `path` is the blob named `etag`. `Ok(None)` when the name names no
/// digest: the caller decides what an unverifiable file means, explicitly.
pub fn file_matches_etag(path: &Path, etag: &str) -> io::Result<Option<bool>> {
    match DigestKind::for_etag(etag) {
        Some(kind) => hash_file(path, kind).map(|d| Some(d.eq_ignore_ascii_case(etag))),
        None => Ok(None),
    }
}

fn changed_while_read(path: &Path, size: u64, read: u64) -> io::Result<()> {
    if read == size {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} changed while it was read ({size} bytes announced, {read} read)",
        path.display()
    )))
}

/// Git blob SHA-1 of in-memory content.
pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut h = Hasher::git_sha1(content.len() as u64);
    h.update(content);
    h.finish().git_sha1.unwrap_or_default()
}

/// SHA-256 of in-memory content.
pub fn sha256_hex(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_GIT: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn kinds_from_etags() {
        assert_eq!(DigestKind::for_etag(&"a".repeat(64)), Some(DigestKind::Sha256));
        assert_eq!(DigestKind::for_etag(&"A".repeat(40)), Some(DigestKind::GitSha1));
        assert_eq!(DigestKind::for_etag("xyz"), None);
        assert_eq!(DigestKind::for_etag(&"g".repeat(40)), None);
        let d = Digest::from_etag(&"AB".repeat(32)).unwrap();
        assert_eq!(d.hex, "ab".repeat(32));
        assert!(d.matches(&"Ab".repeat(32)));
        assert_eq!(d.to_string(), format!("sha256 {}", "ab".repeat(32)));
    }

    #[test]
    fn known_digests() {
        assert_eq!(git_blob_sha1(b"hello\n"), HELLO_GIT);
        assert_eq!(sha256_hex(b"abc"), ABC_SHA256);
        let mut both = Hasher::both(3);
        both.update(b"abc");
        let d = both.finish();
        assert_eq!(d.sha256.as_deref(), Some(ABC_SHA256));
        assert_eq!(d.git_sha1, Some(git_blob_sha1(b"abc")));
        assert!(d.matches_etag(ABC_SHA256) && d.matches_etag(&git_blob_sha1(b"abc")));
        assert!(!d.matches_etag("not-a-digest"));
        assert!(
            !Hasher::sha256().finish().matches_etag(HELLO_GIT),
            "not computed is no match"
        );
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn reset_and_thread_match_inline() {
        let data = vec![7u8; 3 << 20];
        let mut inline = Hasher::sha256();
        inline.update(b"garbage");
        inline.reset();
        inline.update(&data);
        let expected = inline.finish();
        let t = HashThread::spawn(Hasher::sha256(), 4, |_| Ok(()));
        t.update(Bytes::from_static(b"garbage"));
        t.reset();
        t.update(Bytes::from(data));
        assert_eq!(t.finish().unwrap(), expected);
    }

    #[test]
    fn a_failed_first_step_fails_unless_reset() {
        let failing = |_: &mut Hasher| Err(io::Error::other("short prefix"));
        assert!(HashThread::spawn(Hasher::sha256(), 2, failing).finish().is_err());
        let t = HashThread::spawn(Hasher::sha256(), 2, failing);
        t.reset();
        t.update(Bytes::from_static(b"abc"));
        assert_eq!(t.finish().unwrap().sha256.as_deref(), Some(ABC_SHA256));
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        assert_eq!(hash_file(&p, DigestKind::GitSha1).unwrap(), HELLO_GIT);
        let (git, sha, size) = hash_file_both(&p).unwrap();
        assert_eq!((git.as_str(), sha, size), (HELLO_GIT, sha256_hex(b"hello\n"), 6));
        assert_eq!(file_matches_etag(&p, HELLO_GIT).unwrap(), Some(true));
        assert_eq!(file_matches_etag(&p, &"0".repeat(64)).unwrap(), Some(false));
        assert_eq!(file_matches_etag(&p, "weird").unwrap(), None);
        assert!(hash_file(&dir.path().join("missing"), DigestKind::Sha256).is_err());
    }
}
