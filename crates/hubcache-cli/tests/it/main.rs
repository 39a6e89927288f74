//! The CLI's integration tests: the real `hubcache` binary in a clean environment, against the
//! fake Hub, real `hubcache serve` processes and (in CI) the real Python packages. One test binary;
//! each module below says what belongs in it. Shared helpers are in `common`.

#![allow(clippy::unwrap_used)]

/// Spawning the binary, a served mirror, raw HTTP, the Python venv; cache fixtures.
mod common;

/// `cache ls|rm|prune|verify` against Python's own scan and offline loading.
mod cache;
/// The output contract: one path on stdout, exit codes, hints, offline switches, tokens.
mod cli;
/// `hf`'s conventions: `download --dry-run`/`--json`, `sync --dry-run`, `completions bash|zsh|fish`.
mod conventions;
/// `lock`, `sync`, `export`, `import`: reproducible and air-gapped deployments.
mod deploy;
/// `cache prune --max-size/--older-than`: eviction beside running downloads.
mod eviction;
/// Production failures other tools hit: read-only mounts, black-holed endpoints, locks.
mod hardening;
/// A hostile or broken server: exit 1 with `error:`, fast, nothing written outside the cache.
mod hostile;
/// Python fills what hubcache reads and the reverse (needs the venv; fails in CI without it).
mod interop;
/// `hubcache serve` as a process; the mirror's internals are tested in its own crate.
mod mirror;
/// `hubcache model`: from_pretrained-style resolution.
mod model;
/// `--include/--exclude`: patterns that cannot match, selections that match nothing.
mod patterns;
/// Resume across killed runs, full disks, leftovers of other writers.
mod resume;
/// Reuse before transfer beside Python: a blob linked from the shared store, read and swept by Python.
mod reuse;
/// Every cache writer in a loop beside `cache prune` in a loop: the writer protocol holds.
mod writers_vs_prune;
