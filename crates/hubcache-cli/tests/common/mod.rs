//! Helpers shared by the CLI tests: run the real binary in a clean environment.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `hubcache` binary under test, with every HF_* variable cleared and HOME set to `home`.
pub fn hubcache(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubcache"));
    clean_env(&mut cmd, home);
    cmd
}

/// Clears the variables that would change hubcache's or Python's behaviour.
pub fn clean_env(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_")
            || k.starts_with("HUGGING")
            || k.starts_with("TRANSFORMERS")
            || k.starts_with("XDG_")
            || k.to_ascii_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", home);
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The single stdout line of a successful run, as a path.
pub fn single_path(o: &Output) -> PathBuf {
    assert!(o.status.success(), "failed: {}\n{}", o.status, stderr(o));
    let out = stdout(o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be exactly one line: {out:?}");
    PathBuf::from(lines[0])
}

/// The Python interpreter of the test venv; `None` (skip) outside CI when it is missing.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("HUBCACHE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    if candidate.is_file() {
        return Some(candidate);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI: the Python venv is missing at {} (run scripts/setup-python.sh)",
            candidate.display()
        );
    }
    eprintln!(
        "skipping: no Python venv at {} (run scripts/setup-python.sh)",
        candidate.display()
    );
    None
}
