//! Removing revisions, repos and leftovers: a pure plan first, then its execution.
//!
//! **Plan** ([`plan_revisions`], [`plan_prune`]; pure over a [`CacheInfo`](super::scan::CacheInfo)): huggingface_hub's
//! `delete_revisions` rules — every revision of a repo selected → the whole repo folder; else
//! each selected snapshot folder, its refs, and each of its blobs that no remaining revision
//! uses (a copied file inside the snapshot only counts its size). Bytes freed are Python's
//! `expected_freed_size`, shared-store aware: a store link frees its payload only when every
//! valid manifest reference is being deleted. `prune` adds detached revisions (no ref), blobs
//! no snapshot uses, every `*.incomplete`, unreferenced store payloads and empty folders.
//!
//! **Execute** ([`execute()`]) in Python's order — repos → snapshots → refs → blobs → incomplete
//! files → shared-store sweep → empty folders — so no ref or link ever points at a missing blob
//! mid-way. Safety beside running downloads:
//! - it needs a [`CleanupLock`]: `.locks/hubcache-gc.lock` taken *exclusive* (waiting, with a
//!   message, while hubcache downloads hold it shared); callers re-scan and re-plan under it and
//!   run only what was shown ([`DeletePlan::restricted_to`]);
//! - Python does not know that lock, so every blob is deleted only while its
//!   `.locks/<repo>/<etag>.lock` is held (waiting for it), after re-checking under it that no
//!   snapshot links to the blob; an `.incomplete` file whose lock is busy is being written and
//!   is kept; a whole repo is removed only after each of its etag locks was free once;
//! - nothing outside the cache is touched: each path's parent is resolved and must lie inside
//!   the cache, a blob must sit directly in its own repo's `blobs/`, and links are removed as
//!   links (never their targets; store payloads go only through [`shared_store::sweep`](super::shared_store::sweep)).
//!
//! Where things are: `target.rs` parses and resolves what `cache rm` names, `plan.rs` makes the
//! pure plans, `execute.rs` runs a plan under the locks.

mod execute;
mod plan;
mod target;

pub use execute::{execute, ExecuteReport, Kept};
pub use plan::{plan_prune, plan_prune_with, plan_revisions, DeletePlan, SelectedRevision, Selection};
pub use target::{resolve_targets, select_commits, Resolution, RevisionKey, Target};

pub use super::writer::CleanupLock;
