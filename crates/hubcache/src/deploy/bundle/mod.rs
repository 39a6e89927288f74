//! Bundles: one tar file carrying selected snapshots across an air gap, verified on arrival.
//!
//! Layout: `manifest.json` first (every repo's refs, snapshot entries and tree listings, and
//! every blob's size and sha256), then `blobs/<etag>` once per distinct blob, deduplicated
//! across revisions and repos. No symlinks travel: the importer rebuilds them. Export streams
//! each blob from the cache and checks it against its name on the way out; import streams each
//! blob into a staging folder, checks its etag and sha256, and only when the whole bundle has
//! been read and verified moves blobs into place, then links snapshots, then writes refs.
//!
//! Where things are: `manifest.rs` (the `manifest.json` format and its validation), `export.rs`
//! and `import.rs` (the two directions), `parts.rs` (split bundles `<out>.000`, `<out>.001`, …),
//! `hashing.rs` (the buffered hasher both directions use).

mod export;
mod hashing;
mod import;
mod manifest;
mod parts;
mod reader;

pub use export::{export, ExportItem};
pub use import::import;
pub use manifest::{BlobInfo, BundleManifest, RepoEntry};
pub use parts::part_name;
pub use reader::read_bundle;

/// What an export or import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// Repos.
    pub repos: usize,
    /// Snapshot entries.
    pub entries: usize,
    /// Distinct blobs.
    pub blobs: usize,
    /// Bytes of distinct blobs.
    pub blob_bytes: u64,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
}
