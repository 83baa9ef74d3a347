//! Progress on stderr, only when stderr is a terminal: piped or captured output (scripts, tests)
//! gets the summary on stdout and nothing else.
//!
//! The library's long operations (migration, warm, inspection, rotation) are single calls that
//! report at the end, so the indicator is a spinner naming the phase, with the time elapsed.

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
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
