//! `cargo xtask`: project chores for pw-cache, and the operator commands of `pw-cache`.
//!
//! `bench` replays proxywhirl's benchmark through pw-cache (see `docs/performance.md`). Every
//! other command (`migrate-jsonl`, `warm`, `export`, `stats`, `get`, `inspect`, `rotate-key`,
//! `cleanup`, `show-config`, `completions`) is the `pw-cache` command's, from the `pw_cache_cli`
//! library (crates/pw-cache-cli): parsed next to `bench` and run by it, so `cargo xtask stats
//! ...` and `pw-cache stats ...` are one implementation with the same output and exit codes.
//! They are documented in `docs/cli.md` and by `cargo xtask <command> --help`.
//!
//! Exit codes: 0 success; 1 partial (something was skipped or failed, and reported); 2 bad usage
//! or unusable input (the one-line message names the path or the key's source, never a key).

mod bench;
mod cli;

use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let matches = cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Bench(args) => pw_cache_cli::finish(bench::run(&args)),
        Command::Operator(command) => pw_cache_cli::run_command(&command),
    }
}
