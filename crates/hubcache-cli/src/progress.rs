//! Progress bars (only on a terminal) and notices on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use hubcache::cache::layout::GC_LOCK_NAME;
use hubcache::{FileProgress, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Who waits for a lock another process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// A download (the clean-up lock shared, or a file's lock).
    Download,
    /// `cache rm`/`prune` (the clean-up lock exclusive, or a file's lock before deleting it).
    Cleanup,
}

/// What we say while `waiter` waits for `lock`: who holds it, the lock and how long so far.
pub fn lock_wait_notice(waiter: Waiter, lock: &Path, waited: Duration) -> String {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let what = match (waiter, name == GC_LOCK_NAME) {
        (Waiter::Download, true) => "waiting for a cache clean-up (hubcache cache rm/prune) to finish".to_string(),
        (Waiter::Download, false) => "waiting for another process to finish downloading".to_string(),
        (Waiter::Cleanup, true) => "waiting for running hubcache downloads to finish before cleaning up".to_string(),
        (Waiter::Cleanup, false) => format!(
            "waiting for a download to finish with {}",
            name.trim_end_matches(".lock")
        ),
    };
    format!("{what} (lock {}, waited {}s)", lock.display(), waited.as_secs())
}

/// Whether stderr is a terminal (bars are drawn only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Draws one bar per transfer (and a total bar for a snapshot) and prints notices.
pub struct CliReporter {
    bars: Option<MultiProgress>,
    quiet: bool,
    verbose: bool,
    /// The total of the snapshot being fetched, when one is.
    total: Mutex<Option<ProgressBar>>,
}

/// Files smaller than this get no bar of their own during a snapshot (the total shows them).
const OWN_BAR_MIN: u64 = 8 << 20;

impl CliReporter {
    /// `bars`: draw progress bars; `quiet`: no warnings either; `verbose`: log how each
    /// transfer runs (connections, parts, retries).
    pub fn new(bars: bool, quiet: bool, verbose: bool) -> Self {
        CliReporter {
            bars: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            quiet,
            verbose: verbose && !quiet,
            total: Mutex::new(None),
        }
    }

    fn println(&self, line: &str) {
        print_line(self.bars.as_ref(), line);
    }
}

fn print_line(bars: Option<&MultiProgress>, line: &str) {
    match bars {
        Some(m) => {
            let _ = m.println(line);
        }
        None => eprintln!("{line}"),
    }
}

/// The style of every bar: name, bar, bytes, rate, time left.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:30!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// One file's progress: its own bar (if drawn), the snapshot's total, the verbose log.
struct Bar {
    own: Option<ProgressBar>,
    total: Option<ProgressBar>,
    /// Bytes this file added to the total (taken back on a restart).
    counted: u64,
    log: Option<(String, Option<MultiProgress>)>,
}

impl FileProgress for Bar {
    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.own {
            b.inc(n);
        }
        if let Some(t) = &self.total {
            t.inc(n);
        }
        self.counted += n;
    }
    fn restart(&mut self) {
        if let Some(b) = &self.own {
            b.set_position(0);
        }
        if let Some(t) = &self.total {
            t.dec(self.counted);
        }
        self.counted = 0;
    }
    fn finish(&mut self) {
        if let Some(b) = &self.own {
            b.finish_and_clear();
        }
    }
    fn detail(&mut self, message: &str) {
        if let Some((name, bars)) = &self.log {
            print_line(bars.as_ref(), &format!("{name}: {message}"));
        }
    }
}

impl Reporter for CliReporter {
    fn file_started(&self, name: &str, total: Option<u64>) -> Box<dyn FileProgress> {
        let log = self.verbose.then(|| (name.to_string(), self.bars.clone()));
        let Some(m) = &self.bars else {
            return match log {
                Some(log) => Box::new(Bar {
                    own: None,
                    total: None,
                    counted: 0,
                    log: Some(log),
                }),
                None => Box::new(hubcache::NoProgress),
            };
        };
        let batch = self.total.lock().ok().and_then(|t| t.clone());
        let own = (batch.is_none() || total.is_none_or(|t| t >= OWN_BAR_MIN)).then(|| {
            let bar = m.add(ProgressBar::new(total.unwrap_or(0)));
            bar.set_style(bar_style());
            bar.set_message(name.to_string());
            bar
        });
        Box::new(Bar {
            own,
            total: batch,
            counted: 0,
            log,
        })
    }

    fn batch_started(&self, files: usize, bytes: u64) {
        let Some(m) = &self.bars else { return };
        let bar = m.insert(0, ProgressBar::new(bytes));
        bar.set_style(bar_style());
        bar.set_message(format!("{files} files"));
        if let Ok(mut t) = self.total.lock() {
            if let Some(old) = t.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn waiting_for_lock(&self, lock: &Path, waited: Duration) {
        self.println(&lock_wait_notice(Waiter::Download, lock, waited));
    }

    fn warning(&self, message: &str) {
        if !self.quiet {
            self.println(&format!("warning: {message}"));
        }
    }

    fn debug(&self, message: &str) {
        if self.verbose {
            self.println(&format!("debug: {message}"));
        }
    }
}

impl Drop for CliReporter {
    fn drop(&mut self) {
        if let Some(t) = self.total.get_mut().ok().and_then(Option::take) {
            t.finish_and_clear();
        }
    }
}

/// Prints a lock wait of a command that writes the cache without a [`CliReporter`].
pub fn print_writer_wait(lock: &Path, waited: Duration) {
    eprintln!("{}", lock_wait_notice(Waiter::Download, lock, waited));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_notices_name_who_holds_the_lock() {
        let gc = Path::new("/c/.locks").join(GC_LOCK_NAME);
        let file = Path::new("/c/.locks/models--a--b/abc123.lock");
        let secs = Duration::from_secs(5);
        let download_gc = lock_wait_notice(Waiter::Download, &gc, secs);
        assert!(download_gc
            .starts_with("waiting for a cache clean-up (hubcache cache rm/prune) to finish (lock /c/.locks/"));
        assert!(download_gc.ends_with(", waited 5s)"), "{download_gc}");
        assert!(lock_wait_notice(Waiter::Download, file, secs)
            .starts_with("waiting for another process to finish downloading"));
        assert!(lock_wait_notice(Waiter::Cleanup, &gc, secs)
            .starts_with("waiting for running hubcache downloads to finish before cleaning up"));
        assert_eq!(
            lock_wait_notice(Waiter::Cleanup, file, secs),
            "waiting for a download to finish with abc123 (lock /c/.locks/models--a--b/abc123.lock, waited 5s)"
        );
    }
}
