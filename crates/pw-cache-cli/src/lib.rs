//! The `pw-cache` command: operator commands for a cache directory as proxywhirl lays it out (an
//! L2 directory of JSONL shards or `l2_cache.db`, and an L3 SQLite database or a Redis L3),
//! built on the [`pw_cache`] library.
//!
//! | command | what it does |
//! |---|---|
//! | `migrate-jsonl` | a JSONL L2 directory into the SQLite L2 database `l2_cache.db` |
//! | `warm` | load proxies from a `.json`, `.jsonl` or `.csv` file into a cache |
//! | `export` | every live entry to a JSONL file (credentials masked, or as tokens) |
//! | `stats` | counts per tier: entries, expired, unreadable, health statuses, size |
//! | `get` | one entry: every field (credentials as `***`) and which tiers hold it |
//! | `inspect` | every entry, one row per key, without changing anything |
//! | `rotate-key` | re-encrypt every stored credential under the current key |
//! | `cleanup` | remove the expired entries (and, if asked, the unreadable ones) |
//! | `show-config` | check a JSON configuration and print the effective one |
//! | `completions` | a shell's completion script |
//!
//! Every reading command takes `--json`: one JSON document on stdout instead of the summary,
//! with the same exit code. Exit codes ([`exit_code`]): 0 done; 1 partial (something skipped,
//! failed or unreadable, and reported; for `get`, a key no tier holds); 2 bad usage or unusable
//! input, with one line on stderr, `error: …`, naming the path or the key's source, never a key.
//!
//! The binary is [`run`] of its arguments; `cargo xtask` (this workspace's chores) parses the
//! same [`Command`]s next to its own and runs them with [`run_command`]. Each command is also a
//! function of its own in [`commands`], filling a summary and returning an [`Outcome`].
//!
//! ```
//! use std::process::ExitCode;
//!
//! // `pw-cache show-config`: the default configuration, as JSON, on stdout.
//! assert_eq!(pw_cache_cli::run(["pw-cache", "show-config"]), ExitCode::SUCCESS);
//!
//! // The same, into a string.
//! use clap::Parser;
//! let cli = pw_cache_cli::Cli::parse_from(["pw-cache", "show-config", "--json"]);
//! let mut out = String::new();
//! let result = pw_cache_cli::execute(&cli.command, &mut out);
//! assert_eq!(pw_cache_cli::exit_code(&result), 0);
//! assert!(out.contains("default_ttl_seconds"));
//! ```

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
mod progress;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use crate::cli::{AFTER_HELP, Cli, Command};
pub use crate::commands::{CmdResult, Fatal, Outcome};

/// Parses `args` (the program's name first, as `std::env::args_os()` gives them) and runs the
/// command: the summary on stdout, an error as one line on stderr; the exit code to end with.
/// `--help` and `--version` print and exit 0; bad usage prints clap's message and exits 2.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ExitCode::from(run_code(args))
}

/// [`run`], with the exit code as a number (for a caller that is not `main`: the Python
/// package's `pw-cache` console script).
pub fn run_code<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => {
            let mut out = String::new();
            let result = execute(&cli.command, &mut out);
            print_summary(&out);
            report(&result);
            exit_code(&result)
        }
        Err(e) => {
            // Help and version go to stdout; a reader that went away is not an error.
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
    }
}

/// Runs `command`, prints its summary on stdout (see [`print_summary`]) and its error, if any,
/// on stderr ([`finish`]); the exit code to end with.
pub fn run_command(command: &Command) -> ExitCode {
    let mut out = String::new();
    let result = execute(command, &mut out);
    print_summary(&out);
    finish(result)
}

/// Runs `command`, its summary (or JSON document) appended to `out`; how it ended.
pub fn execute(command: &Command, out: &mut String) -> CmdResult {
    match command {
        Command::ShowConfig(args) => commands::show_config::run(args, out),
        Command::MigrateJsonl(args) => commands::migrate_jsonl::run(args, out),
        Command::Warm(args) => commands::warm::run(args, out),
        Command::Export(args) => commands::export::run(args, out),
        Command::Stats(args) => commands::stats::run(args, out),
        Command::Get(args) => commands::get::run(args, out),
        Command::Inspect(args) => commands::inspect::run(args, out),
        Command::RotateKey(args) => commands::rotate_key::run(args, out),
        Command::Cleanup(args) => commands::cleanup::run(args, out),
        Command::Completions(args) => commands::completions::run(args, out),
    }
}

/// The exit code of a command's result: 0 done, 1 partial, 2 unusable input.
pub fn exit_code(result: &CmdResult) -> u8 {
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Partial) => 1,
        Err(Fatal(_)) => 2,
    }
}

/// Ends a command: a [`Fatal`] error is printed on stderr as one line, `error: …` (a message
/// with a newline, an error chain, is folded); the exit code of `result` ([`exit_code`]).
pub fn finish(result: CmdResult) -> ExitCode {
    report(&result);
    ExitCode::from(exit_code(&result))
}

/// Prints a [`Fatal`] error on stderr as one line, `error: …`.
fn report(result: &CmdResult) {
    if let Err(Fatal(message)) = result {
        eprintln!("error: {}", message.replace('\n', " "));
    }
}

/// Writes a summary on stdout. A reader that went away (`| head`) is not an error: the work is
/// done, and the exit code says how it went.
pub fn print_summary(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: cannot write the summary to stdout: {e}");
    }
}
