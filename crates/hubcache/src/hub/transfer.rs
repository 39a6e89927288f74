//! Streams a file into a temp file while hashing it, resuming broken transfers with `Range`.
//!
//! Memory stays bounded whatever the file size: bytes go to disk in 1 MiB writes and to a hasher
//! thread through a bounded channel, so hashing overlaps the transfer instead of following it.
//!
//! A transfer may also start from bytes already on disk (a temp file left by an earlier run):
//! the hasher thread reads that prefix back from the file (positional reads on its own handle)
//! before the bytes that arrive, while the request asks for `Range: bytes=<len>-`. Nothing
//! about the prefix is trusted: the final size and digest check covers it, and the caller
//! discards a resumed file that fails it.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::client::HubClient;
use super::error::HubError;
use crate::digest::{hash_file, DigestKind, HashThread, Hasher};
use crate::progress::FileProgress;
use bytes::Bytes;

/// Small network chunks are gathered up to this size before one write + one hash message;
/// larger ones are written and hashed as they arrive, without a copy.
const WRITE_CHUNK: usize = 256 << 10;
/// Messages in flight to the hasher thread; with chunks of at most a few hundred KiB this
/// bounds a transfer's memory to a few MiB whatever the file size.
const HASH_QUEUE: usize = 32;
/// Files at least this large are hashed on their own thread.
const THREADED_HASH_MIN: u64 = 4 << 20;
/// Largest body accepted when the size was not announced.
const MAX_UNANNOUNCED: u64 = 50_000_000_000;
/// Broken transfers retried without progress before giving up.
const MAX_STALLED_RESUMES: u32 = 5;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The server or the connection failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// Writing the temp file failed.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// The temp file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The body was longer or shorter than announced.
    #[error("size mismatch: expected {expected} bytes, received {received}")]
    Size {
        /// Announced size.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The content does not hash to its etag.
    #[error("content does not match its hash: expected {kind} {expected}, got {actual}")]
    Hash {
        /// Digest kind.
        kind: DigestKind,
        /// The etag.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
}

/// The first `len` bytes of a resumed temp file, read back through a handle of its own.
struct Prefix {
    file: File,
    len: u64,
}

impl Prefix {
    /// Feeds the prefix to `hasher` with positional reads (the writer's offset is untouched).
    fn hash_into(&self, hasher: &mut Hasher) -> io::Result<()> {
        let mut buf = vec![0u8; WRITE_CHUNK.min(usize::try_from(self.len).unwrap_or(WRITE_CHUNK))];
        let mut pos = 0u64;
        while pos < self.len {
            let want = usize::try_from(self.len - pos).map_or(buf.len(), |left| left.min(buf.len()));
            let n = self.file.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the resumed temp file is shorter than its recorded length",
                ));
            }
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        Ok(())
    }
}

/// Feeds a hasher inline or on its own thread; both give the same digest. `None` hasher: the
/// digest cannot be computed while streaming (git-sha1 of unknown size), the file is hashed
/// from disk at the end.
enum HashPipe {
    Inline(Option<Box<Hasher>>),
    Threaded(HashThread),
}

impl HashPipe {
    /// A pipe whose digest starts with `prefix` (bytes already on disk), if any. A large prefix
    /// is read by the hasher thread, overlapping the transfer of the rest.
    fn new(kind: Option<DigestKind>, size: Option<u64>, prefix: Option<Prefix>) -> io::Result<HashPipe> {
        let Some(mut hasher) = kind.and_then(|k| Hasher::for_kind(k, size)) else {
            return Ok(HashPipe::Inline(None));
        };
        let prefix = prefix.filter(|p| p.len > 0);
        let large =
            size.is_some_and(|s| s >= THREADED_HASH_MIN) || prefix.as_ref().is_some_and(|p| p.len >= THREADED_HASH_MIN);
        if !large {
            if let Some(p) = &prefix {
                p.hash_into(&mut hasher)?;
            }
            return Ok(HashPipe::Inline(Some(Box::new(hasher))));
        }
        Ok(HashPipe::Threaded(HashThread::spawn(hasher, HASH_QUEUE, move |h| {
            prefix.map_or(Ok(()), |p| p.hash_into(h))
        })))
    }

    fn update(&mut self, data: Bytes) {
        match self {
            HashPipe::Inline(hasher) => {
                if let Some(h) = hasher {
                    h.update(&data);
                }
            }
            HashPipe::Threaded(t) => t.update(data),
        }
    }

    fn reset(&mut self) {
        match self {
            HashPipe::Inline(hasher) => {
                if let Some(h) = hasher {
                    h.reset();
                }
            }
            HashPipe::Threaded(t) => t.reset(),
        }
    }

    /// The digest, or `None` when it could not be computed while streaming.
    fn finish(self) -> io::Result<Option<String>> {
        let digests = match self {
            HashPipe::Inline(None) => return Ok(None),
            HashPipe::Inline(Some(h)) => (*h).finish(),
            HashPipe::Threaded(t) => t.finish()?,
        };
        // The hasher was made for one kind: the digest is whichever it computed.
        Ok(digests.sha256.or(digests.git_sha1))
    }
}

struct Sink<'a> {
    file: &'a mut File,
    path: &'a Path,
    buf: Vec<u8>,
    hash: HashPipe,
    written: u64,
}

impl Sink<'_> {
    fn io(&self, source: io::Error) -> TransferError {
        TransferError::Io {
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), TransferError> {
        self.written += chunk.len() as u64;
        if self.buf.is_empty() && chunk.len() >= WRITE_CHUNK / 4 {
            if let Err(e) = self.file.write_all(&chunk) {
                return Err(self.io(e));
            }
            self.hash.update(chunk);
            return Ok(());
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TransferError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(WRITE_CHUNK));
        if let Err(e) = self.file.write_all(&full) {
            return Err(self.io(e));
        }
        self.hash.update(Bytes::from(full));
        Ok(())
    }

    fn restart(&mut self) -> Result<(), TransferError> {
        self.buf.clear();
        self.written = 0;
        self.hash.reset();
        let r = self
            .file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)).map(|_| ()));
        r.map_err(|e| self.io(e))
    }
}

/// Downloads `location` into `file`, checks the size and the digest named by `etag`, and
/// returns the byte count. `file` (opened for reading and writing) already holds the first
/// `resume_from` bytes (0: empty); they are hashed from disk and only the rest is requested.
/// Broken transfers resume from where they stopped; a server that ignores `Range` (or cannot
/// satisfy it) makes the transfer restart from zero.
#[allow(clippy::too_many_arguments)]
pub async fn download(
    client: &HubClient,
    location: &str,
    file: &mut File,
    path: &Path,
    etag: &str,
    expected_size: Option<u64>,
    resume_from: u64,
    progress: &mut dyn FileProgress,
) -> Result<u64, TransferError> {
    let kind = DigestKind::for_etag(etag);
    let limit = expected_size.unwrap_or(MAX_UNANNOUNCED);
    if resume_from > limit {
        return Err(TransferError::Size {
            expected: limit,
            received: resume_from,
        });
    }
    let io_err = |source: io::Error| TransferError::Io {
        path: path.to_path_buf(),
        source,
    };
    let prefix = match resume_from {
        0 => None,
        len => Some(Prefix {
            file: file.try_clone().map_err(io_err)?,
            len,
        }),
    };
    file.seek(SeekFrom::Start(resume_from)).map_err(io_err)?;
    let hash = HashPipe::new(kind, expected_size, prefix).map_err(io_err)?;
    let mut sink = Sink {
        file,
        path,
        buf: Vec::with_capacity(usize::try_from(limit).map_or(WRITE_CHUNK, |l| WRITE_CHUNK.min(l.saturating_add(1)))),
        hash,
        written: resume_from,
    };
    progress.advance(resume_from);
    // A leftover that already holds every byte only needs its check.
    let complete = resume_from > 0 && expected_size == Some(resume_from);
    let mut stalled = 0u32;
    'attempt: loop {
        if complete {
            break;
        }
        let offset = sink.written;
        let mut resp = match client.get_content(location, offset).await {
            Ok(r) => r,
            Err(HubError::Status { status: 416, .. }) if offset > 0 => {
                // The server cannot serve the rest (a leftover longer than its file?): start over.
                sink.restart()?;
                progress.restart();
                continue;
            }
            Err(e) if e.is_transient() && stalled < MAX_STALLED_RESUMES => {
                stalled += 1;
                tokio::time::sleep(client.config().resume_delay).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if offset > 0 && resp.status().as_u16() != 206 {
            // The server ignored our Range: start over from byte zero.
            sink.restart()?;
            progress.restart();
        }
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if sink.written + chunk.len() as u64 > limit {
                        return Err(TransferError::Size {
                            expected: limit,
                            received: sink.written + chunk.len() as u64,
                        });
                    }
                    let n = chunk.len() as u64;
                    sink.push(chunk)?;
                    progress.advance(n);
                    stalled = 0;
                }
                Ok(None) => break 'attempt,
                Err(e) => {
                    let timed_out = e.is_timeout();
                    let err = HubError::Transfer {
                        url: super::url::redact(location),
                        detail: e.without_url().to_string(),
                    };
                    let err = if timed_out {
                        HubError::Timeout {
                            url: super::url::redact(location),
                            detail: "no data within the read timeout".to_string(),
                        }
                    } else {
                        err
                    };
                    if stalled >= MAX_STALLED_RESUMES {
                        return Err(err.into());
                    }
                    stalled += 1;
                    sink.flush()?;
                    tokio::time::sleep(client.config().resume_delay).await;
                    continue 'attempt;
                }
            }
        }
    }
    sink.flush()?;
    if let Err(e) = sink.file.flush() {
        return Err(sink.io(e));
    }
    let written = sink.written;
    if let Some(expected) = expected_size {
        if written != expected {
            return Err(TransferError::Size {
                expected,
                received: written,
            });
        }
    }
    let streamed = sink.hash.finish().map_err(io_err)?;
    if let Some(kind) = kind {
        let actual = match streamed {
            Some(d) => d,
            None => hash_file(path, kind).map_err(io_err)?,
        };
        if !actual.eq_ignore_ascii_case(etag) {
            return Err(TransferError::Hash {
                kind,
                expected: etag.to_string(),
                actual,
            });
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_pipe_matches_inline_and_resets() {
        let data = vec![7u8; (THREADED_HASH_MIN as usize) + 10];
        let size = Some(data.len() as u64);
        let mut threaded = HashPipe::new(Some(DigestKind::Sha256), size, None).unwrap();
        assert!(matches!(threaded, HashPipe::Threaded(_)));
        threaded.update(Bytes::from_static(b"garbage"));
        threaded.reset();
        threaded.update(Bytes::from(data.clone()));
        let mut inline = Hasher::sha256();
        inline.update(&data);
        assert_eq!(threaded.finish().unwrap(), inline.finish().sha256);
    }

    /// A prefix on disk, hashed inline (small) or on the thread (large), then the rest fed in:
    /// the same digest as hashing everything at once, for sha256 and git-sha1.
    #[test]
    fn resumed_prefix_hashes_like_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        for (len, cut) in [(1000usize, 300usize), (3 * (THREADED_HASH_MIN as usize) + 77, 5 << 20)] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data[..cut]).unwrap();
            for kind in [DigestKind::Sha256, DigestKind::GitSha1] {
                let size = Some(len as u64);
                let prefix = Prefix {
                    file: File::open(&p).unwrap(),
                    len: cut as u64,
                };
                let mut pipe = HashPipe::new(Some(kind), size, Some(prefix)).unwrap();
                assert_eq!(matches!(pipe, HashPipe::Threaded(_)), cut >= THREADED_HASH_MIN as usize);
                pipe.update(Bytes::copy_from_slice(&data[cut..]));
                let mut whole = Hasher::for_kind(kind, size).unwrap();
                whole.update(&data);
                assert_eq!(
                    pipe.finish().unwrap().as_deref(),
                    whole.finish().get(kind),
                    "{kind:?} {len}"
                );
            }
        }
    }

    #[test]
    fn short_prefix_is_an_error_unless_reset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![1u8; 100]).unwrap();
        let size = Some(THREADED_HASH_MIN * 2);
        let short = || Prefix {
            file: File::open(&p).unwrap(),
            len: THREADED_HASH_MIN,
        };
        let pipe = HashPipe::new(Some(DigestKind::Sha256), size, Some(short())).unwrap();
        assert!(pipe.finish().is_err());
        let mut pipe = HashPipe::new(Some(DigestKind::Sha256), size, Some(short())).unwrap();
        pipe.reset();
        pipe.update(Bytes::from_static(b"abc"));
        assert!(
            pipe.finish().unwrap().is_some(),
            "a restart from zero clears the failure"
        );
        let small = Prefix {
            file: File::open(&p).unwrap(),
            len: 200,
        };
        assert!(HashPipe::new(Some(DigestKind::Sha256), Some(1000), Some(small)).is_err());
    }
}
