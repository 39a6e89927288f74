//! The buffered hasher that export and import share: reads are gathered into chunks for a
//! hasher thread, so hashing overlaps the I/O.

use std::io::{self, Read};

use bytes::Bytes;

use crate::digest::{self, Digests, HashThread};

/// Bytes gathered before a chunk is handed to the hasher thread.
pub(super) const HASH_CHUNK: usize = 1 << 20;

/// Gathers what is read into chunks for a [`HashThread`] (sha256 always, git blob sha1 when
/// asked), so hashing overlaps the reads and writes instead of following them.
pub(super) struct Hasher {
    buf: Vec<u8>,
    thread: HashThread,
    read: u64,
}

impl Hasher {
    pub(super) fn new(git_size: Option<u64>) -> Self {
        let hasher = git_size.map_or_else(digest::Hasher::sha256, digest::Hasher::both);
        Hasher {
            buf: Vec::with_capacity(HASH_CHUNK),
            thread: HashThread::spawn(hasher, 8, |_| Ok(())),
            read: 0,
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        self.read += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= HASH_CHUNK {
            self.ship();
        }
    }

    /// Hands a whole chunk over without copying it (when nothing is pending).
    pub(super) fn update_owned(&mut self, data: Vec<u8>) {
        if !self.buf.is_empty() {
            self.update(&data);
            return;
        }
        self.read += data.len() as u64;
        self.thread.update(Bytes::from(data));
    }

    fn ship(&mut self) {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(HASH_CHUNK));
        self.thread.update(Bytes::from(full));
    }

    /// The digests and the bytes seen (no digest if the hasher thread failed).
    pub(super) fn finish(mut self) -> (Digests, u64) {
        if !self.buf.is_empty() {
            self.ship();
        }
        (self.thread.finish().unwrap_or_default(), self.read)
    }
}

/// Hashes everything read through it (see [`Hasher`]).
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R, git_size: Option<u64>) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(git_size),
        }
    }

    pub(super) fn finish(self) -> (Digests, u64) {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
