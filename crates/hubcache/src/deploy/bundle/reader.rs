//! Reading a bundle without a cache folder (for other destinations, such as an object store):
//! the validated manifest first, then each blob's bytes in bundle order. The reader checks
//! the manifest, names, sizes and completeness; the caller hashes each blob as it consumes it
//! and must not make anything visible before the whole bundle has been read and verified.

use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::path::Path;

use super::manifest::{validate, BundleManifest};
use super::parts::open_bundle;
use super::BlobInfo;
use crate::deploy::DeployError;

/// Largest manifest accepted.
const MAX_MANIFEST: u64 = 256 << 20;

/// Reads the bundle at `path` (or its parts `path.000`, …): `manifest` gets the validated
/// manifest, then `blob` is called once per distinct blob with its etag, its manifest entry
/// and a reader of exactly its bytes. Fails on a malformed, truncated or padded bundle.
pub fn read_bundle(
    path: &Path,
    manifest: impl FnOnce(&BundleManifest) -> Result<(), DeployError>,
    mut blob: impl FnMut(&str, &BlobInfo, &mut dyn Read) -> Result<(), DeployError>,
) -> Result<BundleManifest, DeployError> {
    let refuse = |detail: String| DeployError::Bundle {
        path: path.to_path_buf(),
        detail,
    };
    let (reader, _) = open_bundle(path)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let mut entries = archive.entries().map_err(|e| refuse(format!("not a tar file: {e}")))?;
    let mut first = match entries.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(refuse(format!("unreadable: {e}"))),
        None => return Err(refuse("empty".into())),
    };
    if first.path().map(|p| p != Path::new("manifest.json")).unwrap_or(true) || first.size() > MAX_MANIFEST {
        return Err(refuse("the first entry is not manifest.json".into()));
    }
    let mut json = Vec::new();
    first
        .read_to_end(&mut json)
        .map_err(|e| refuse(format!("truncated manifest: {e}")))?;
    let m: BundleManifest = serde_json::from_slice(&json).map_err(|e| refuse(format!("malformed manifest: {e}")))?;
    validate(&m).map_err(refuse)?;
    manifest(&m)?;
    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("truncated or corrupt: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| refuse(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let etag = name
            .strip_prefix("blobs/")
            .filter(|e| m.blobs.contains_key(*e))
            .ok_or_else(|| refuse(format!("unexpected entry `{}`", name.escape_debug())))?
            .to_string();
        if !seen.insert(etag.clone()) {
            return Err(refuse(format!("blob {etag} appears twice")));
        }
        let info = &m.blobs[&etag];
        if entry.size() != info.size {
            return Err(refuse(format!(
                "blob {etag} has {} bytes, the manifest says {}",
                entry.size(),
                info.size
            )));
        }
        blob(&etag, info, &mut entry)?;
    }
    if let Some(missing) = m.blobs.keys().find(|e| !seen.contains(*e)) {
        return Err(refuse(format!("truncated: blob {missing} is missing")));
    }
    Ok(m)
}
