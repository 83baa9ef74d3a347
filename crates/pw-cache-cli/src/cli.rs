//! The command line: every subcommand and option, with the text `--help` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pw_cache::{L2BackendType, L3BackendType, MAX_TTL_SECONDS};

/// What `cargo xtask --help` adds after the command list.
const AFTER_HELP: &str = "\
Keys: credentials are encrypted with PROXYWHIRL_CACHE_ENCRYPTION_KEY (previous keys, comma \
separated, in PROXYWHIRL_CACHE_KEY_PREVIOUS; a proxywhirl 0.3.3 process sharing the cache fails \
to start with more than one there), else with the key file pw-cache.key in the L2 directory. \
Only `warm` creates a key file; the other commands need a key to exist.

Exit codes: 0 success; 1 partial (something skipped or failed, reported); 2 bad usage or unusable \
input (missing directory, unreadable database, invalid key), with a message naming the path or the \
key's source.

See docs/cli.md for an example of each command.";

/// pw-cache chores and operator commands.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "pw-cache chores and operator commands", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a JSON cache configuration (or the embedded defaults) and print the effective one.
    ShowConfig {
        /// A JSON config file; every field is optional and defaults as proxywhirl's.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Migrate a JSONL L2 directory (16 shard files) into the SQLite L2 database `l2_cache.db`.
    ///
    /// Every entry of the shard directory `--from` is written into `l2_cache.db` in the `--to`
    /// directory (created if missing), in one transaction, through the SQLite L2 tier's
    /// migration: the last line of a key wins, credentials are decrypted with the keys and
    /// re-encrypted under the current one. Entries the database already holds as they are are
    /// skipped, so running it twice changes nothing the second time. The source is only read:
    /// nothing is deleted from it. Exit 1 when an entry or line could not be migrated.
    MigrateJsonl(MigrateArgs),
    /// Load the proxies of a `.json`, `.jsonl` or `.csv` file into a cache (created if missing).
    ///
    /// Every row becomes an entry in L2 and L3 (see docs/warm.md for the fields and rules);
    /// a bad row is reported and the rest loaded. Prints loaded / skipped / failed and where
    /// each bad row is. Exit 1 when a row was skipped or failed, 2 when the file cannot be used
    /// at all (missing, unsupported extension, not a JSON array, no `proxy_url` column).
    Warm(WarmArgs),
    /// Write every live entry of a cache to a JSONL file (proxywhirl's export format).
    ///
    /// Credentials are masked as `"***"` unless `--encrypted-credentials` is given. Exporting
    /// changes nothing in the cache: expired entries are left out and counted, not deleted.
    /// Exit 1 when an entry could not be read (it is left out and named).
    Export(ExportArgs),
    /// Show what a cache holds: entries per tier, expired, corrupt, health statuses, size.
    ///
    /// Every entry is read (and its credentials decrypted) without being used: nothing is
    /// counted as an access, promoted or removed. "corrupt" entries are those that cannot be
    /// read with the configured keys (damaged, or a credential under a key the ring lacks).
    /// Exit 1 when some are (they are left in place; `cleanup --remove-unreadable` removes
    /// them), exit 2 when the key opens none of the stored credentials.
    Stats(StatsArgs),
    /// Re-encrypt every stored credential under the current key.
    ///
    /// Entries whose credentials were written with a previous key (PROXYWHIRL_CACHE_KEY_PREVIOUS,
    /// or an old key file) are read with it and written back under the current key, then the
    /// tiers are compacted so no old token is left on disk. Afterwards the previous keys can be
    /// dropped and everything still reads. Exit 1 when an entry could not be rewritten (keep
    /// the previous keys until it is dealt with).
    ///
    /// A configured key that opens none of the stored credentials, while the key file's key
    /// does, is refused as a likely typo (exit 2) unless `--new-key` says it is new on purpose.
    RotateKey(RotateKeyArgs),
    /// Remove the expired entries from every tier and report how many.
    ///
    /// Entries that cannot be read are never expired: they stay, whatever their expiry time.
    /// `--remove-unreadable` removes them too, and says how many and why.
    Cleanup(CleanupArgs),
    /// Replay proxywhirl's benchmark workload through pw-cache (release build).
    ///
    /// Runs the configurations and phases of `bench_python.py` (each tier alone, the manager
    /// with JSONL and with SQLite L2; put, get_hit, get_miss, mixed) and prints one JSON record
    /// per (config, phase) on stdout, in that script's schema with "impl": "pw-cache". With
    /// `--vs-python`, runs `bench_python.py` with the reference venv afterwards and prints the
    /// table of ratios pw-cache / proxywhirl on stderr. See docs/performance.md.
    Bench(BenchArgs),
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

/// Which backend holds L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// 16 JSON Lines shard files `shard_NN.jsonl` (proxywhirl's default).
    Jsonl,
    /// One SQLite database, `l2_cache.db`.
    Sqlite,
}

/// Which backend holds L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum L3Backend {
    /// One SQLite database (`--l3-db`), proxywhirl's.
    Sqlite,
    /// A Redis server shared by a fleet: the URL from the config's `redis_url` or
    /// PW_CACHE_REDIS_URL (never on the command line, which other users can see).
    Redis,
}

impl From<L3Backend> for L3BackendType {
    fn from(backend: L3Backend) -> Self {
        match backend {
            L3Backend::Sqlite => L3BackendType::Sqlite,
            L3Backend::Redis => L3BackendType::Redis,
        }
    }
}

impl From<Backend> for L2BackendType {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Jsonl => L2BackendType::Jsonl,
            Backend::Sqlite => L2BackendType::Sqlite,
        }
    }
}

/// Where a cache is, and where its configuration and key come from.
#[derive(Debug, Clone, Args)]
pub(crate) struct CacheArgs {
    /// The L2 directory (`l2_cache_dir`): the JSONL shards or `l2_cache.db`, and the key file
    /// `pw-cache.key` when no key is set in the environment.
    #[arg(long, value_name = "DIR")]
    pub(crate) l2_dir: PathBuf,
    /// Which backend holds L2: `jsonl` (shard files) or `sqlite` (`l2_cache.db`).
    #[arg(long, value_name = "BACKEND", value_enum)]
    pub(crate) l2_backend: Backend,
    /// The L3 SQLite database file (`l3_database_path`); required with `--l3-backend sqlite`.
    #[arg(long, value_name = "PATH")]
    pub(crate) l3_db: Option<PathBuf>,
    /// Which backend holds L3: `sqlite` (`--l3-db`) or `redis` (URL from the config's
    /// `redis_url` or PW_CACHE_REDIS_URL).
    #[arg(long, value_name = "BACKEND", value_enum, default_value = "sqlite")]
    pub(crate) l3_backend: L3Backend,
    /// The Redis L3's namespace [default: the config's `redis_namespace`, else pw-cache].
    #[arg(long, value_name = "NAME")]
    pub(crate) redis_namespace: Option<String>,
    /// A JSON cache configuration (as `show-config --file` reads it) for the other settings:
    /// TTLs, per-source TTLs, tier bounds, `encryption_key`. The options above override its
    /// paths and backend; L1 and the background cleaner are always off in these commands.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The key file to use when no key is configured or set in the environment
    /// [default: pw-cache.key in the L2 directory].
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

/// Options of `migrate-jsonl`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MigrateArgs {
    /// The JSONL shard directory to read (it must exist; it is only read).
    #[arg(long, value_name = "DIR")]
    pub(crate) from: PathBuf,
    /// The directory of the SQLite L2 database `l2_cache.db` (both created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) to: PathBuf,
    /// Migrate into a temporary copy of the target database and report what a real run would
    /// do, without creating or changing anything in `--to`.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The key file to use when PROXYWHIRL_CACHE_ENCRYPTION_KEY is not set
    /// [default: pw-cache.key in the `--from` directory].
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

/// Options of `warm`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WarmArgs {
    /// The file of proxies: `.json` (an array of objects), `.jsonl` (an object per line) or
    /// `.csv` (a header row with a `proxy_url` column).
    #[arg(long, value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// The cache.
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Every entry's TTL in seconds (1 to 100 years) instead of the source's `per_source_ttl`
    /// or `default_ttl_seconds`.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub(crate) ttl: Option<u64>,
    /// How many bad rows to list (all are counted).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) max_issues: usize,
}

/// Options of `export`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExportArgs {
    /// The cache.
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// The JSONL file to write (replaced atomically, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Also write each credential as `username_encrypted` / `password_encrypted`: its Fernet
    /// token under the cache's current key (never plaintext), so that `warm` into a cache with
    /// that key restores the credentials.
    #[arg(long)]
    pub(crate) encrypted_credentials: bool,
}

/// Options of `stats`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatsArgs {
    /// The cache.
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Print one JSON object instead of the table (fields in docs/cli.md).
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `rotate-key`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RotateKeyArgs {
    /// The cache.
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// The configured key is a new key on purpose: rotate onto it even though only the key
    /// file's key opens what is stored (without it, that is refused as a likely typo).
    #[arg(long)]
    pub(crate) new_key: bool,
}

/// Options of `cleanup`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CleanupArgs {
    /// The cache.
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Also remove every entry the keys cannot read (damaged records, credentials under a key
    /// the ring lacks; in JSONL, lines that are no entry). Nothing else ever removes them.
    /// Refused, like every command, when the key opens none of the stored credentials.
    #[arg(long)]
    pub(crate) remove_unreadable: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
