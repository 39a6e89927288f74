//! What the mirror serves from: metadata (which commit a revision names, which files a commit
//! has, and what each file is) and the blob bytes.
//!
//! Two stores: a cache folder ([`fs::FsStore`], shared with Python and the CLI) and, with the
//! `s3` feature, an S3-compatible object store (`s3::S3Store`, shared by replicas). The server
//! asks either the same questions (which commit a revision names, which files a commit has,
//! what a file is) and reads bytes through [`BlobRef`]: the file server only ever asks for a
//! byte range of a blob reference, never for a path, so both answer with the same headers.
//!
//! Every method of the folder store may touch the disk (and, for copied files, hash them), so
//! the server calls it on tokio's blocking pool, never on a worker thread; the S3 store is
//! async throughout.

pub mod fs;
#[cfg(feature = "s3")]
pub mod s3;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use hubcache::cache::tree::TreeFile;

pub use fs::FsStore;

/// A file the mirror can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// Listing metadata (size, git blob id, LFS sha256).
    pub meta: TreeFile,
    /// Where the bytes are, as the store that holds them names them.
    pub blob: BlobRef,
}

/// A reference to a blob's bytes, opened through a [`BlobReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobRef {
    /// A file in the cache folder (the snapshot entry; symlinks are followed when opened).
    File(PathBuf),
    /// A whole object in the S3 store (key and size).
    #[cfg(feature = "s3")]
    Object {
        /// The object key (`PREFIX/blobs/<etag>`).
        key: String,
        /// Its size.
        size: u64,
    },
}

/// A stream of a blob's bytes, in large chunks.
pub type BlobStream = Pin<Box<dyn futures_util::Stream<Item = io::Result<Bytes>> + Send>>;

/// Reads byte ranges of blobs.
pub trait BlobReader: Send + Sync {
    /// Opens `blob` and streams `len` bytes from `start`; fails before any byte if it cannot be opened.
    fn read_range(&self, blob: &BlobRef, start: u64, len: u64) -> impl Future<Output = io::Result<BlobStream>> + Send;
}

/// What the cache says about one file at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Present.
    Cached(CachedFile),
    /// Recorded as absent (`.no_exist`), or absent from a complete listing.
    Missing,
    /// Not in the cache; an upstream may have it.
    Unknown,
}
