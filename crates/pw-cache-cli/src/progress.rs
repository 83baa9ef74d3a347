//! Progress on stderr, only when stderr is a terminal: piped or captured output (scripts, tests)
//! gets the summary on stdout and nothing else.
//!
//! A spinner names the phase; the long operations that report their progress (warm, inspection,
//! rotation: the library's `*_with_progress` calls) turn it into a bar with counts: entries for
//! inspection and rotation, bytes of the file read for a warm. The JSONL migration is one
//! transaction and keeps the spinner.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner on stderr, cleared when finished or dropped.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Starts a spinner showing `message`; hidden unless stderr is a terminal.
    pub(crate) fn start(message: impl Into<String>) -> Self {
        let target = if std::io::stderr().is_terminal() {
            // Hides itself too when TERM is unset or `dumb`.
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(message.into());
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        Self { bar }
    }

    /// Names the next phase.
    pub(crate) fn phase(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// Shows `done` of `total` items as a bar (the library's progress callbacks call this).
    pub(crate) fn step(&self, done: u64, total: u64) {
        self.show(done, total, "{msg} [{bar:30}] {pos}/{len} [{elapsed}, eta {eta}]");
    }

    /// Shows `done` of `total` bytes as a bar (`12.5 MiB/400.0 MiB`): for a warm, which reports
    /// the bytes of its file read.
    pub(crate) fn step_bytes(&self, done: u64, total: u64) {
        self.show(
            done,
            total,
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} [{elapsed}, eta {eta}]",
        );
    }

    /// Shows `done` of `total` as a bar drawn with `template`.
    fn show(&self, done: u64, total: u64, template: &str) {
        if self.bar.length() != Some(total) {
            let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
            self.bar.set_style(style.progress_chars("=> "));
            self.bar.set_length(total);
        }
        self.bar.set_position(done);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
