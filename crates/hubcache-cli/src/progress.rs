//! Progress bars (only on a terminal) and notices on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use hubcache::{FileProgress, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether stderr is a terminal (bars are drawn only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Draws one bar per transfer and prints notices.
pub struct CliReporter {
    bars: Option<MultiProgress>,
    quiet: bool,
}

impl CliReporter {
    /// `bars`: draw progress bars; `quiet`: no warnings either.
    pub fn new(bars: bool, quiet: bool) -> Self {
        CliReporter {
            bars: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            quiet,
        }
    }

    fn println(&self, line: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

struct Bar(ProgressBar);

impl FileProgress for Bar {
    fn advance(&mut self, n: u64) {
        self.0.inc(n);
    }
    fn restart(&mut self) {
        self.0.set_position(0);
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Reporter for CliReporter {
    fn file_started(&self, name: &str, total: Option<u64>) -> Box<dyn FileProgress> {
        let Some(m) = &self.bars else {
            return Box::new(hubcache::NoProgress);
        };
        let bar = m.add(ProgressBar::new(total.unwrap_or(0)));
        let style = ProgressStyle::with_template("{msg:30!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(name.to_string());
        Box::new(Bar(bar))
    }

    fn waiting_for_lock(&self, lock: &Path, waited: Duration) {
        if lock
            .file_name()
            .is_some_and(|n| n == hubcache::cache::layout::GC_LOCK_NAME)
        {
            self.println(&format!(
                "waiting for a cache clean-up (hubcache cache rm/prune) to finish (lock {}, waited {}s)",
                lock.display(),
                waited.as_secs()
            ));
            return;
        }
        self.println(&format!(
            "waiting for another process to finish downloading (lock {}, waited {}s)",
            lock.display(),
            waited.as_secs()
        ));
    }

    fn warning(&self, message: &str) {
        if !self.quiet {
            self.println(&format!("warning: {message}"));
        }
    }
}

/// Tells the user a command waits for a lock another process holds (for commands that write
/// the cache without a [`CliReporter`]).
pub fn lock_wait_notice(lock: &Path, waited: Duration) {
    eprintln!(
        "waiting for another process to release {} (waited {}s)",
        lock.display(),
        waited.as_secs()
    );
}
