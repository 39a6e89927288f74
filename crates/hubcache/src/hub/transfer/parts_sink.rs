//! The writer of a ranged transfer: parts arrive at any offset, are written with positional
//! writes (`write_at`) on a thread of its own, and the digest follows the contiguous prefix:
//! bytes written where the prefix ends go to the hasher as they are, bytes written beyond it
//! are read back from the file once the prefix reaches them. The set of ranges written is kept
//! in a record beside the file (written atomically, every [`RECORD_EVERY`] bytes and at the
//! end), so a later run fetches only what is missing.
//!
//! Memory: [`QUEUE`] messages of at most [`super::sink::WRITE_CHUNK`]-ish bytes to the writer,
//! `HASH_QUEUE` read-back chunks of [`READ_BACK`] bytes to the hasher.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::plan::RangeSet;
use super::TransferError;
use crate::digest::{DigestKind, HashThread, Hasher};

/// Messages in flight to the writer thread.
const QUEUE: usize = 16;
/// Messages in flight to the hasher thread.
const HASH_QUEUE: usize = 4;
/// Read-back chunk (bytes written ahead of the prefix, hashed from the file).
const READ_BACK: usize = 1 << 20;
/// The record is rewritten after this many new bytes (a rename of a small file, no fsync: after
/// a crash the record may claim bytes that never reached the disk, which the hash catches).
const RECORD_EVERY: u64 = 8 << 20;

/// One instruction to the parts writer.
pub(super) enum PartOp {
    /// Write these bytes at this offset.
    Write(u64, Bytes),
}

/// A cloneable handle the parts send their bytes through.
#[derive(Clone)]
pub(super) struct PartTx(mpsc::Sender<PartOp>);

impl PartTx {
    /// Queues `data` for offset `at`; `false` when the writer stopped (its result says why).
    pub async fn write(&self, at: u64, data: Bytes) -> bool {
        self.0.send(PartOp::Write(at, data)).await.is_ok()
    }
}

/// What the writer thread ends with.
pub(super) struct PartsDone {
    /// The digest of the whole file, when every byte was written (and a digest kind is known).
    pub digest: Option<String>,
    /// Bytes held (the ranges written, the adopted ones included).
    pub held: u64,
}

/// The async side of the parts writer.
pub(super) struct PartSink {
    tx: Option<PartTx>,
    done: oneshot::Receiver<io::Result<PartsDone>>,
    path: PathBuf,
}

impl PartSink {
    /// Starts the writer on `file` (extended to `size`), which already holds `held` (untrusted,
    /// hashed back from the file as the prefix reaches it); the record goes to `record`.
    pub fn start(
        file: File,
        path: &Path,
        record: &Path,
        kind: Option<DigestKind>,
        size: u64,
        held: RangeSet,
    ) -> io::Result<PartSink> {
        file.set_len(size)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done) = oneshot::channel();
        let hasher = kind.and_then(|k| Hasher::for_kind(k, Some(size)));
        let writer = PartWriter {
            reader: file.try_clone()?,
            file,
            record: record.to_path_buf(),
            size,
            held,
            frontier: 0,
            unrecorded: 0,
            hash: hasher.map(|h| HashThread::spawn(h, HASH_QUEUE, |_| Ok(()))),
        };
        std::thread::Builder::new()
            .name("hubcache-parts".into())
            .spawn(move || {
                let _ = done_tx.send(writer.run(rx));
            })?;
        Ok(PartSink {
            tx: Some(PartTx(tx)),
            done,
            path: path.to_path_buf(),
        })
    }

    /// A handle for one more part.
    pub fn sender(&self) -> Option<PartTx> {
        self.tx.clone()
    }

    /// Waits for every queued write (all senders must be dropped) and the digest.
    pub async fn finish(mut self) -> Result<PartsDone, TransferError> {
        self.tx = None;
        let result = self
            .done
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the parts writer stopped")));
        result.map_err(|source| TransferError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The writer thread's state.
struct PartWriter {
    file: File,
    reader: File,
    record: PathBuf,
    size: u64,
    held: RangeSet,
    /// Bytes `[0, frontier)` were handed to the hasher.
    frontier: u64,
    unrecorded: u64,
    hash: Option<HashThread>,
}

impl PartWriter {
    fn run(mut self, mut rx: mpsc::Receiver<PartOp>) -> io::Result<PartsDone> {
        let result = self.serve(&mut rx);
        // Whatever happened, the record says what is on disk, for a later run.
        let recorded = self.write_record();
        result?;
        let held = self.held.covered();
        let complete = self.frontier == self.size;
        let digest = match self.hash.take() {
            Some(h) if complete => {
                let d = h.finish()?;
                d.sha256.or(d.git_sha1)
            }
            _ => None,
        };
        if complete {
            // A complete file needs no record; it is placed or discarded next.
            let _ = std::fs::remove_file(&self.record);
        } else {
            recorded?;
        }
        Ok(PartsDone { digest, held })
    }

    fn serve(&mut self, rx: &mut mpsc::Receiver<PartOp>) -> io::Result<()> {
        self.advance(None)?;
        while let Some(PartOp::Write(at, data)) = rx.blocking_recv() {
            let end = at.saturating_add(data.len() as u64);
            if end > self.size {
                return Err(io::Error::other("a part wrote past the end of the file"));
            }
            self.file.write_all_at(&data, at)?;
            self.held.insert(at, end);
            self.advance(Some((at, data)))?;
            self.unrecorded += end - at;
            if self.unrecorded >= RECORD_EVERY {
                self.write_record()?;
            }
        }
        Ok(())
    }

    /// Moves the hash frontier over every byte now held: `fresh` (just written) directly when it
    /// starts at the frontier, the rest read back from the file.
    fn advance(&mut self, fresh: Option<(u64, Bytes)>) -> io::Result<()> {
        if let Some((at, data)) = fresh {
            let end = at + data.len() as u64;
            if at <= self.frontier && end > self.frontier {
                let skip = usize::try_from(self.frontier - at).unwrap_or(usize::MAX);
                if let Some(h) = &self.hash {
                    h.update(data.slice(skip..));
                }
                self.frontier = end;
            }
        }
        let reach = self.held.contiguous_from(self.frontier);
        if self.frontier < reach && self.hash.is_some() {
            self.reader.seek(SeekFrom::Start(self.frontier))?;
        }
        while self.frontier < reach {
            let n = (reach - self.frontier).min(READ_BACK as u64);
            let Some(h) = &self.hash else {
                self.frontier = reach;
                break;
            };
            // Read into spare capacity: no zeroing of a buffer about to be overwritten.
            let mut buf = Vec::with_capacity(READ_BACK);
            (&mut self.reader).take(n).read_to_end(&mut buf)?;
            if buf.len() as u64 != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the parts file is shorter than the bytes written to it",
                ));
            }
            h.update(Bytes::from(buf));
            self.frontier += n;
        }
        Ok(())
    }

    fn write_record(&mut self) -> io::Result<()> {
        self.unrecorded = 0;
        let tmp = crate::fs::sibling_temp(&self.record, "tmp");
        let written =
            std::fs::write(&tmp, self.held.encode(self.size)).and_then(|()| std::fs::rename(&tmp, &self.record));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 251) as u8).collect()
    }

    /// Parts written out of order, with a prefix already on disk: the digest of the whole file,
    /// the record removed once complete; an incomplete run leaves a record of what it wrote.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn out_of_order_parts_hash_like_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let all = data(5 << 20);
        let size = all.len() as u64;
        let path = dir.path().join("f.parts");
        let record = dir.path().join("f.record");
        // An earlier run left [0, 1 MiB) and [3 MiB, 4 MiB).
        let mut held = RangeSet::new();
        let mib = 1usize << 20;
        let mut on_disk = vec![0u8; all.len()];
        on_disk[..mib].copy_from_slice(&all[..mib]);
        on_disk[3 * mib..4 * mib].copy_from_slice(&all[3 * mib..4 * mib]);
        std::fs::write(&path, &on_disk).unwrap();
        held.insert(0, mib as u64);
        held.insert(3 * mib as u64, 4 * mib as u64);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let sink = PartSink::start(file, &path, &record, Some(DigestKind::Sha256), size, held.clone()).unwrap();
        let tx = sink.sender().unwrap();
        for (a, b) in [(4 * mib, 5 * mib), (2 * mib, 3 * mib), (mib, 2 * mib)] {
            for at in (a..b).step_by(100_000) {
                let end = (at + 100_000).min(b);
                assert!(tx.write(at as u64, Bytes::copy_from_slice(&all[at..end])).await);
            }
        }
        drop(tx);
        let done = sink.finish().await.unwrap();
        let mut whole = Hasher::sha256();
        whole.update(&all);
        assert_eq!(done.digest, whole.finish().sha256);
        assert_eq!(done.held, size);
        assert_eq!(std::fs::read(&path).unwrap(), all);
        assert!(!record.exists(), "a complete file has no record");

        // Incomplete: no digest, a record of exactly what was written.
        let file = std::fs::File::create(&path).unwrap();
        let file2 = file.try_clone().unwrap();
        drop(file);
        let sink = PartSink::start(file2, &path, &record, Some(DigestKind::Sha256), size, RangeSet::new()).unwrap();
        let tx = sink.sender().unwrap();
        assert!(
            tx.write(2 * mib as u64, Bytes::copy_from_slice(&all[2 * mib..3 * mib]))
                .await
        );
        drop(tx);
        let done = sink.finish().await.unwrap();
        assert_eq!((done.digest, done.held), (None, mib as u64));
        let text = std::fs::read_to_string(&record).unwrap();
        let mut expect = RangeSet::new();
        expect.insert(2 * mib as u64, 3 * mib as u64);
        assert_eq!(RangeSet::decode(&text, size), Some(expect));
    }

    #[tokio::test]
    async fn a_write_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        let sink = PartSink::start(file, &path, &dir.path().join("r"), None, 10, RangeSet::new()).unwrap();
        let tx = sink.sender().unwrap();
        let _ = tx.write(5, Bytes::from_static(b"0123456789")).await;
        drop(tx);
        assert!(matches!(sink.finish().await, Err(TransferError::Io { .. })));
    }
}
