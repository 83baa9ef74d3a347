//! `cargo xtask`'s command line: `bench`, and every command of `pw-cache` (the `pw_cache_cli`
//! library's, parsed and run by it: one implementation).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// What `cargo xtask --help` says after the command list, before `pw-cache`'s own text
/// (`pw_cache_cli::AFTER_HELP`: keys, exit codes): see [`command`].
const XTASK_NOTE: &str = "The commands but `bench` are those of the `pw-cache` command \
(crates/pw-cache-cli; `cargo install --path crates/pw-cache-cli`), run by its library.";

/// The command line with its help text: `pw-cache`'s after the command list.
pub(crate) fn command() -> clap::Command {
    Cli::command().after_help(format!("{XTASK_NOTE}\n\n{}", pw_cache_cli::AFTER_HELP))
}

/// pw-cache chores, and the operator commands of `pw-cache`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "pw-cache chores, and the operator commands of `pw-cache`"
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Replay proxywhirl's benchmark workload through pw-cache (release build).
    ///
    /// Runs the configurations and phases of `bench_python.py` (each tier alone, the manager
    /// with JSONL and with SQLite L2; put, get_hit, get_miss, mixed) and prints one JSON record
    /// per (config, phase) on stdout, in that script's schema with "impl": "pw-cache". With
    /// `--vs-python`, runs `bench_python.py` with the reference venv afterwards and prints the
    /// table of ratios pw-cache / proxywhirl on stderr. See docs/performance.md.
    Bench(BenchArgs),
    /// The operator commands (`pw-cache <command>`).
    #[command(flatten)]
    Operator(pw_cache_cli::Command),
}

/// The options of `bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Sizes every configuration runs at (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub(crate) sizes: Vec<usize>,
    /// Extra sizes for the SQLite configurations (comma separated; 0 = none). The reference
    /// gets the first one only.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    pub(crate) big: Vec<usize>,
    /// Parent of the temporary cache directories: /dev/shm is tmpfs (the reference's default);
    /// give a directory on a disk to measure the disk.
    #[arg(long, default_value = "/dev/shm")]
    pub(crate) dir: PathBuf,
    /// Also write the JSON records to this file.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Seconds one of our phases may run before it is cut.
    #[arg(long, default_value_t = 300.0)]
    pub(crate) cap: f64,
    /// Only these configurations (comma separated: tier_memory, tier_jsonl, tier_sqlite_l2,
    /// tier_sqlite_l3, manager_jsonl, manager_sqlite, floor_io, floor_full, manager_redis).
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Then fill an L1 tier with this many entries in a fresh process and print its resident
    /// memory per entry (0 = skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) l1_memory: usize,
    /// Also run the manager with L3 in a redis-server started on 127.0.0.1 (`manager_redis`;
    /// needs redis-server on PATH).
    #[arg(long)]
    pub(crate) redis: bool,
    /// Also run proxywhirl 0.3.3's bench_python.py and print the ratios.
    #[arg(long)]
    pub(crate) vs_python: bool,
    /// Where bench_python.py is (its ref-venv.sh must be beside it).
    #[arg(long)]
    pub(crate) python_bench: Option<PathBuf>,
    /// bench_python.py's --cap (seconds per phase).
    #[arg(long, default_value_t = 8.0)]
    pub(crate) python_cap: f64,
    /// bench_python.py's --budget (seconds in all before it skips phases).
    #[arg(long, default_value_t = 280.0)]
    pub(crate) python_budget: f64,
    /// Also write the ratio table (Markdown) to this file.
    #[arg(long)]
    pub(crate) table: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
    }
}
