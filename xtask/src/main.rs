//! `cargo xtask`: project chores and operator commands for pw-cache.
//!
//! The operator commands work on a cache directory as proxywhirl lays it out (an L2 directory of
//! JSONL shards or `l2_cache.db`, and an L3 SQLite database): `migrate-jsonl`, `warm`, `export`,
//! `stats`, `rotate-key` and `cleanup`. `show-config` checks a configuration file. Every command
//! is documented in `docs/cli.md` and by `cargo xtask <command> --help`. `bench` replays
//! proxywhirl's benchmark through pw-cache (see `docs/performance.md`).
//!
//! Exit codes: 0 success; 1 partial (something was skipped or failed, and reported); 2 bad usage
//! or unusable input (the one-line message names the path or the key's source, never a key).

mod cli;
mod commands;
mod progress;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{Fatal, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    let result = match cli.command {
        Command::ShowConfig { file } => commands::show_config::run(file.as_deref(), &mut out),
        Command::MigrateJsonl(args) => commands::migrate_jsonl::run(&args, &mut out),
        Command::Warm(args) => commands::warm::run(&args, &mut out),
        Command::Export(args) => commands::export::run(&args, &mut out),
        Command::Stats(args) => commands::stats::run(&args, &mut out),
        Command::RotateKey(args) => commands::rotate_key::run(&args, &mut out),
        Command::Cleanup(args) => commands::cleanup::run(&args, &mut out),
        Command::Bench(args) => commands::bench::run(&args),
    };
    print_summary(&out);
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Err(Fatal(message)) => {
            // One line: a message with a newline (an error chain) is folded.
            eprintln!("error: {}", message.replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

/// Writes the summary on stdout. A reader that went away (`| head`) is not an error: the work
/// is done, and the exit code says how it went.
fn print_summary(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: cannot write the summary to stdout: {e}");
    }
}
