//! `hubcache cache verify`: re-hash cached files (and compare with the Hub's listing).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::verify::{self, Finding, VerifySelection};
use hubcache::download::trees::HubTrees;
use hubcache::Settings;

use super::{cache_dir, out, repo_type, REPO_TYPES};
use crate::units::format_size;
use crate::CmdResult;

/// Arguments of `hubcache cache verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// ORG/NAME to verify (default: the whole cache).
    repo_id: Option<String>,
    /// Type of REPO.
    #[arg(long, default_value = "model", value_parser = REPO_TYPES)]
    repo_type: String,
    /// Only this revision of REPO (a ref or a commit); default: all its cached revisions.
    #[arg(long, requires = "repo_id")]
    revision: Option<String>,
    /// Also compare each snapshot with the Hub's file listing of its commit.
    #[arg(long)]
    remote: bool,
    /// With --remote: fail when the Hub has files the snapshot lacks.
    #[arg(long, requires = "remote")]
    fail_on_missing_files: bool,
    /// With --remote: fail when the snapshot has files the Hub does not list.
    #[arg(long, requires = "remote")]
    fail_on_extra_files: bool,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Access token for --remote (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
}

/// Runs `cache verify`.
pub fn run(settings: &Settings, args: VerifyArgs) -> CmdResult {
    let cache = cache_dir(settings, &args.cache_dir);
    let selection = VerifySelection {
        repo: args.repo_id.as_ref().map(|id| (repo_type(&args.repo_type), id.clone())),
        revision: args.revision.clone(),
    };
    let trees = if args.remote {
        let builder = crate::hub_builder(settings, Some(&cache), args.token.as_ref(), false);
        Some(HubTrees::new(builder.build()?.client().clone()))
    } else {
        None
    };
    let report = verify::verify(&cache, &selection, trees.as_ref().map(|t| t as &dyn verify::TreeSource))?;
    let (mut damaged, mut missing_remote, mut extra_remote) = (0usize, 0usize, 0usize);
    for f in &report.findings {
        let listed = match f {
            Finding::RemoteMissing { .. } => {
                missing_remote += 1;
                args.fail_on_missing_files
            }
            Finding::RemoteExtra { .. } => {
                extra_remote += 1;
                args.fail_on_extra_files
            }
            _ => {
                damaged += 1;
                true
            }
        };
        if listed {
            out(&finding_line(f));
        }
    }
    if missing_remote > 0 && !args.fail_on_missing_files {
        eprintln!(
            "warning: {missing_remote} file(s) on the Hub are not in the cached snapshot(s); --fail-on-missing-files lists them"
        );
    }
    if extra_remote > 0 && !args.fail_on_extra_files {
        eprintln!("warning: {extra_remote} cached file(s) are not on the Hub; --fail-on-extra-files lists them");
    }
    if !report.unverifiable.is_empty() {
        eprintln!(
            "note: {} file(s) have no blob name or cached listing to check against (copied files)",
            report.unverifiable.len()
        );
    }
    let failed = damaged > 0
        || (args.fail_on_missing_files && missing_remote > 0)
        || (args.fail_on_extra_files && extra_remote > 0);
    let scope = format!(
        "{} file(s) in {} revision(s) ({} distinct blob(s), {})",
        report.files,
        report.revisions,
        report.hashed,
        format_size(report.bytes)
    );
    if failed {
        out(&format!(
            "Verification failed: {damaged} damaged file(s) among {scope}."
        ));
        return Ok(ExitCode::from(1));
    }
    out(&format!("Verified {scope}: all checksums match."));
    Ok(ExitCode::SUCCESS)
}

/// One finding as a line of the report: what is wrong, where, and the digests involved.
fn finding_line(finding: &Finding) -> String {
    match finding {
        Finding::Corrupt {
            file_path,
            expected,
            actual,
            ..
        } => format!("corrupt: {}: expected {expected}, got {actual}", file_path.display()),
        Finding::Missing { file_path, blob_path } => format!(
            "missing: {} (blob {} is gone)",
            file_path.display(),
            blob_path.display()
        ),
        Finding::Unreadable { path, message } => format!("unreadable: {}: {message}", path.display()),
        Finding::RemoteMismatch {
            file_path,
            expected,
            actual,
        } => format!(
            "mismatch: {}: the Hub says {expected}, the file hashes to {actual}",
            file_path.display()
        ),
        Finding::RemoteMissing { repo, commit, path } => format!("missing locally: {repo}@{commit}: {path}"),
        Finding::RemoteExtra { repo, commit, path } => format!("extra: {repo}@{commit}: {path}"),
    }
}
