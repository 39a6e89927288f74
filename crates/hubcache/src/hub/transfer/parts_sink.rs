//! The writer of a ranged transfer: parts arrive at any offset and are written with positional
//! writes (`write_at`) on a thread of its own; a second thread follows with the digest over the
//! contiguous prefix. It hashes the bytes themselves when they were written close to where the
//! prefix ends (at most [`KEEP_BUDGET`] of them kept), and reads the rest back from the file once
//! the prefix reaches them. The writer never waits for the hasher: a long read-back (a part
//! finished ahead of the prefix) does not hold up the connections. The set of ranges written is
//! kept in a record beside the file (written atomically, every [`RECORD_EVERY`] bytes and at the
//! end), so a later run fetches only what is missing.
//!
//! Memory: [`QUEUE`] messages of at most [`super::sink::WRITE_CHUNK`]-ish bytes to the writer,
//! [`KEEP_BUDGET`] of kept bytes and one [`READ_BACK`] buffer for the hasher.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::plan::RangeSet;
use super::TransferError;
use crate::digest::{DigestKind, Hasher};

/// Messages in flight to the writer thread (each connection also holds one it waits to send:
/// with 24 connections a queue of 16 added about 8 MiB of peak RSS and no speed).
const QUEUE: usize = 4;
/// Most bytes handed to the hasher with their write (the rest it reads back from the file).
const KEEP_BUDGET: u64 = 8 << 20;
/// Read-back chunk (bytes written ahead of the prefix, hashed from the file): small enough to
/// stay in the core's cache between the read and the hash (1 MiB chunks made the read-back
/// cost about 2.5 times more at 40 MB/s × 32 connections).
const READ_BACK: usize = 128 << 10;
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
    /// Bytes the hasher read back from the file (written ahead of the prefix, or while it
    /// lagged); the rest it hashed from memory.
    pub read_back: u64,
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
        let hash = match kind.and_then(|k| Hasher::for_kind(k, Some(size))) {
            Some(h) => Some(Follower::spawn(h, file.try_clone()?, held.clone(), size)?),
            None => None,
        };
        let writer = PartWriter {
            file,
            record: record.to_path_buf(),
            size,
            held,
            unrecorded: 0,
            hash,
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
    record: PathBuf,
    size: u64,
    held: RangeSet,
    unrecorded: u64,
    hash: Option<Follower>,
}

impl PartWriter {
    fn run(mut self, mut rx: mpsc::Receiver<PartOp>) -> io::Result<PartsDone> {
        let result = self.serve(&mut rx);
        // Whatever happened, the record says what is on disk, for a later run.
        let recorded = self.write_record();
        let held = self.held.covered();
        let complete = result.is_ok() && held == self.size;
        // The hasher is always joined; it stops early when the file is incomplete.
        let (digest, read_back) = match self.hash.take().map(Follower::finish) {
            Some(Ok(h)) => (h.digests.and_then(|d| d.sha256.or(d.git_sha1)), h.read_back),
            Some(Err(e)) if complete => return Err(e),
            _ => (None, 0),
        };
        result?;
        if complete {
            // A complete file needs no record; it is placed or discarded next.
            let _ = std::fs::remove_file(&self.record);
        } else {
            recorded?;
        }
        Ok(PartsDone {
            digest,
            held,
            read_back,
        })
    }

    fn serve(&mut self, rx: &mut mpsc::Receiver<PartOp>) -> io::Result<()> {
        while let Some(PartOp::Write(at, data)) = rx.blocking_recv() {
            let end = at.saturating_add(data.len() as u64);
            if end > self.size {
                return Err(io::Error::other("a part wrote past the end of the file"));
            }
            self.file.write_all_at(&data, at)?;
            self.held.insert(at, end);
            if let Some(h) = &self.hash {
                h.offer(at, data);
            }
            self.unrecorded += end - at;
            if self.unrecorded >= RECORD_EVERY {
                self.write_record()?;
            }
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

/// Bytes now on disk, told to the hasher; `data` is a copy-free handle on them when kept.
struct Written {
    at: u64,
    end: u64,
    data: Option<Bytes>,
}

/// What the writer and the hasher both see.
struct Follow {
    /// Bytes `[0, frontier)` are hashed.
    frontier: AtomicU64,
    /// Bytes handed over with their write and not yet let go by the hasher.
    kept: AtomicU64,
}

/// What the hasher thread ends with.
struct Hashed {
    /// The digests, when it hashed the whole file.
    digests: Option<crate::digest::Digests>,
    /// Bytes it read back from the file (the rest it hashed from memory).
    read_back: u64,
}

/// The writer's side of the hasher thread.
struct Follower {
    tx: std_mpsc::Sender<Written>,
    shared: Arc<Follow>,
    handle: JoinHandle<io::Result<Hashed>>,
}

impl Follower {
    fn spawn(hasher: Hasher, reader: File, held: RangeSet, size: u64) -> io::Result<Follower> {
        let (tx, rx) = std_mpsc::channel();
        let shared = Arc::new(Follow {
            frontier: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        });
        let state = HashState {
            hasher,
            reader,
            held,
            size,
            frontier: 0,
            kept: BTreeMap::new(),
            read_back: 0,
            shared: Arc::clone(&shared),
        };
        let handle = std::thread::Builder::new()
            .name("hubcache-hash".into())
            .spawn(move || state.run(&rx))?;
        Ok(Follower { tx, shared, handle })
    }

    /// Tells the hasher that `data` is on disk at `at`, handing the bytes over when they are
    /// close enough to the frontier to be hashed soon and the budget allows.
    fn offer(&self, at: u64, data: Bytes) {
        let len = data.len() as u64;
        let end = at + len;
        let frontier = self.shared.frontier.load(Ordering::Relaxed);
        // Only this thread adds to `kept`, so the check holds until the add.
        let keep = end > frontier
            && at < frontier + KEEP_BUDGET
            && self.shared.kept.load(Ordering::Relaxed) + len <= KEEP_BUDGET;
        if keep {
            self.shared.kept.fetch_add(len, Ordering::Relaxed);
        }
        // A send fails only when the hasher stopped; `finish` says why.
        let _ = self.tx.send(Written {
            at,
            end,
            data: keep.then_some(data),
        });
    }

    /// Waits for the hasher: the digests when it hashed the whole file, and what it read back.
    fn finish(self) -> io::Result<Hashed> {
        drop(self.tx);
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the hasher thread panicked")))
    }
}

/// The hasher thread's state.
struct HashState {
    hasher: Hasher,
    reader: File,
    /// Ranges on disk, as the writer told.
    held: RangeSet,
    size: u64,
    frontier: u64,
    /// Bytes handed over with their write, by offset.
    kept: BTreeMap<u64, Bytes>,
    /// Bytes read back from the file.
    read_back: u64,
    shared: Arc<Follow>,
}

impl HashState {
    fn run(mut self, rx: &std_mpsc::Receiver<Written>) -> io::Result<Hashed> {
        let mut buf = vec![0u8; READ_BACK];
        let mut open = true;
        loop {
            while open {
                match rx.try_recv() {
                    Ok(w) => self.absorb(w),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            if self.frontier == self.size {
                break;
            }
            if !open && self.held.covered() < self.size {
                // The transfer ended incomplete: no digest is wanted.
                break;
            }
            let reach = self.held.contiguous_from(self.frontier);
            if self.frontier < reach {
                self.step(reach, &mut buf)?;
                self.shared.frontier.store(self.frontier, Ordering::Relaxed);
                continue;
            }
            if !open {
                break;
            }
            match rx.recv() {
                Ok(w) => self.absorb(w),
                Err(_) => open = false,
            }
        }
        Ok(Hashed {
            digests: (self.frontier == self.size).then(|| self.hasher.finish()),
            read_back: self.read_back,
        })
    }

    fn absorb(&mut self, w: Written) {
        self.held.insert(w.at, w.end);
        if let Some(data) = w.data {
            if w.end > self.frontier {
                if let Some(old) = self.kept.insert(w.at, data) {
                    self.release(&old);
                }
            } else {
                self.release(&data);
            }
        }
    }

    fn release(&self, data: &Bytes) {
        self.shared.kept.fetch_sub(data.len() as u64, Ordering::Relaxed);
    }

    /// Hashes on from the frontier towards `reach`: kept bytes when they start there, else up
    /// to one [`READ_BACK`] chunk read from the file (up to the next kept bytes).
    fn step(&mut self, reach: u64, buf: &mut [u8]) -> io::Result<()> {
        while let Some(entry) = self.kept.first_entry() {
            if *entry.key() + entry.get().len() as u64 > self.frontier {
                break;
            }
            let gone = entry.remove();
            self.release(&gone);
        }
        let next = self.kept.first_key_value().map(|(&at, d)| (at, d.clone()));
        match next {
            Some((at, data)) if at <= self.frontier => {
                let end = (at + data.len() as u64).min(reach);
                let from = usize::try_from(self.frontier - at).unwrap_or(usize::MAX);
                let to = usize::try_from(end - at).unwrap_or(usize::MAX);
                self.hasher.update(&data[from..to]);
                self.frontier = end;
            }
            next => {
                let stop = next
                    .map_or(reach, |(at, _)| at.min(reach))
                    .min(self.frontier + buf.len() as u64);
                let n = usize::try_from(stop - self.frontier).unwrap_or(buf.len());
                self.reader
                    .read_exact_at(&mut buf[..n], self.frontier)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the parts file is shorter than the bytes written to it",
                        ),
                        _ => e,
                    })?;
                self.hasher.update(&buf[..n]);
                self.read_back += n as u64;
                self.frontier = stop;
            }
        }
        Ok(())
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
        let mut pieces = Vec::new();
        for (a, b) in [(4 * mib, 5 * mib), (2 * mib, 3 * mib), (mib, 2 * mib)] {
            pieces.extend((a..b).step_by(100_000).map(|at| (at, (at + 100_000).min(b))));
        }
        write_and_check(sink, &all, &pieces).await;
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

    /// A part far ahead of the hash frontier (beyond what is kept in memory) is read back from
    /// the file; the parts near the frontier are hashed as they come: the digest is the whole's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn far_ahead_parts_are_read_back_near_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mib = 1usize << 20;
        let all = data(3 * KEEP_BUDGET as usize);
        let size = all.len() as u64;
        let path = dir.path().join("f.parts");
        let record = dir.path().join("f.record");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let sink = PartSink::start(file, &path, &record, Some(DigestKind::Sha256), size, RangeSet::new()).unwrap();
        let far = 2 * KEEP_BUDGET as usize;
        // The far third first (read back later), then the rest in order.
        let pieces: Vec<(usize, usize)> = (far..all.len())
            .step_by(mib)
            .chain((0..far).step_by(mib))
            .map(|a| (a, a + mib))
            .collect();
        let done = write_and_check(sink, &all, &pieces).await;
        assert!(
            done.read_back >= KEEP_BUDGET,
            "the far third was read back: {}",
            done.read_back
        );
    }

    /// Writes `pieces` of `all` in this order, then checks the digest is the whole's and every
    /// byte is held.
    async fn write_and_check(sink: PartSink, all: &[u8], pieces: &[(usize, usize)]) -> PartsDone {
        let tx = sink.sender().unwrap();
        for &(a, b) in pieces {
            assert!(tx.write(a as u64, Bytes::copy_from_slice(&all[a..b])).await);
        }
        drop(tx);
        let done = sink.finish().await.unwrap();
        let mut whole = Hasher::sha256();
        whole.update(all);
        assert_eq!(done.digest, whole.finish().sha256);
        assert_eq!(done.held, all.len() as u64);
        done
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
