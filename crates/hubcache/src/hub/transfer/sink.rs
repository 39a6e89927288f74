//! The temp-file writer: a thread of its own owns the file (seek, writes, truncation) and the
//! in-order digest, fed through a bounded queue, so no file I/O or hashing ever blocks an async
//! worker (a `blocking::Hub` has two of them while eight transfers run).
//!
//! Small network chunks are gathered up to [`WRITE_CHUNK`] before one queue message; larger
//! ones are passed on as they arrive, without a copy. With [`WRITE_QUEUE`] messages to the
//! writer and [`HASH_QUEUE`] to the hasher thread, a transfer holds a few MiB at most.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::TransferError;
use crate::digest::{hash_file, DigestKind, HashThread, Hasher};

/// Gathering size of small chunks (one write + one hash message each).
const WRITE_CHUNK: usize = 256 << 10;
/// Messages in flight to the writer thread.
const WRITE_QUEUE: usize = 8;
/// Messages in flight to the hasher thread.
const HASH_QUEUE: usize = 16;
/// Files at least this large are hashed on a thread of their own (beside the writer).
const THREADED_HASH_MIN: u64 = 4 << 20;

/// One instruction to the writer thread.
enum Op {
    /// Append these bytes.
    Write(Bytes),
    /// Truncate to zero and start the digest over.
    Restart,
    /// All bytes were sent: compute the digest.
    Finish,
}

/// The async side of the writer thread.
pub(super) struct Sink {
    tx: Option<mpsc::Sender<Op>>,
    done: Option<oneshot::Receiver<io::Result<Option<String>>>>,
    /// Set when the sink is dropped without [`Sink::finish`]/[`Sink::close`] (cancellation):
    /// queued writes are skipped.
    abandoned: Arc<AtomicBool>,
    buf: Vec<u8>,
    written: u64,
    path: PathBuf,
}

impl Sink {
    /// Starts the writer thread on `file`, which holds `resume_from` bytes (hashed first).
    pub fn start(
        file: File,
        path: &Path,
        kind: Option<DigestKind>,
        size: Option<u64>,
        resume_from: u64,
    ) -> io::Result<Sink> {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (done_tx, done) = oneshot::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            file,
            path: path.to_path_buf(),
            kind,
            size,
            resume_from,
            abandoned: Arc::clone(&abandoned),
        };
        std::thread::Builder::new()
            .name("hubcache-writer".into())
            .spawn(move || {
                let _ = done_tx.send(writer.run(rx));
            })?;
        Ok(Sink {
            tx: Some(tx),
            done: Some(done),
            abandoned,
            buf: Vec::new(),
            written: resume_from,
            path: path.to_path_buf(),
        })
    }

    /// Bytes the file holds once the queued writes are done.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends a chunk (waits while the writer's queue is full).
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), TransferError> {
        self.written += chunk.len() as u64;
        if self.buf.is_empty() && chunk.len() >= WRITE_CHUNK / 4 {
            return self.send(Op::Write(chunk)).await;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(WRITE_CHUNK);
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands the gathered small chunks to the writer.
    pub async fn flush(&mut self) -> Result<(), TransferError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.buf);
        self.send(Op::Write(Bytes::from(full))).await
    }

    /// Starts the file and its digest over from byte zero.
    pub async fn restart(&mut self) -> Result<(), TransferError> {
        self.buf.clear();
        self.written = 0;
        self.send(Op::Restart).await
    }

    /// Writes everything queued and returns the digest (`None` without a digest kind).
    pub async fn finish(mut self) -> Result<Option<String>, TransferError> {
        self.flush().await?;
        self.send(Op::Finish).await?;
        self.wait().await
    }

    /// Writes everything queued without computing the digest (the transfer failed).
    pub async fn close(mut self) -> Result<(), TransferError> {
        self.flush().await?;
        self.wait().await.map(|_| ())
    }

    async fn send(&mut self, op: Op) -> Result<(), TransferError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(op).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its result says why.
        self.wait().await.map(|_| ())
    }

    async fn wait(&mut self) -> Result<Option<String>, TransferError> {
        self.tx = None;
        let result = match self.done.take() {
            Some(done) => done
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread stopped"))),
            None => Err(io::Error::other("the writer thread already finished")),
        };
        result.map_err(|source| TransferError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.abandoned.store(true, Ordering::Relaxed);
        }
    }
}

/// The writer thread's state.
struct Writer {
    file: File,
    path: PathBuf,
    kind: Option<DigestKind>,
    size: Option<u64>,
    resume_from: u64,
    abandoned: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) -> io::Result<Option<String>> {
        self.file.seek(SeekFrom::Start(self.resume_from))?;
        let prefix = match self.resume_from {
            0 => None,
            len => Some(Prefix {
                file: self.file.try_clone()?,
                len,
            }),
        };
        let mut hash = HashPipe::new(self.kind, self.size, prefix)?;
        while let Some(op) = rx.blocking_recv() {
            if self.abandoned.load(Ordering::Relaxed) {
                return Err(io::Error::other("the transfer was cancelled"));
            }
            match op {
                Op::Write(data) => {
                    self.file.write_all(&data)?;
                    hash.update(data);
                }
                Op::Restart => {
                    self.file.set_len(0)?;
                    self.file.seek(SeekFrom::Start(0))?;
                    hash.reset();
                }
                Op::Finish => {
                    self.file.flush()?;
                    return match (hash.finish()?, self.kind) {
                        (Some(digest), _) => Ok(Some(digest)),
                        // git-sha1 of a file of unknown size: hashed from disk, here.
                        (None, Some(kind)) => hash_file(&self.path, kind).map(Some),
                        (None, None) => Ok(None),
                    };
                }
            }
        }
        // Closed without Finish: the bytes are on disk, no digest wanted.
        self.file.flush()?;
        Ok(None)
    }
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

/// Feeds a hasher inline (on the writer thread) or on a thread of its own; both give the same
/// digest. `None` hasher: the digest cannot be computed while streaming (git-sha1 of unknown
/// size), the file is hashed from disk at the end.
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
