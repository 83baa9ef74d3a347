//! The command line: every subcommand and option, with the text `--help` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pw_cache::{L2BackendType, L3BackendType, MAX_TTL_SECONDS};

/// What `pw-cache --help` adds after the command list (`cargo xtask --help` shows it too): where
/// the keys come from, and the exit codes.
pub const AFTER_HELP: &str = "\
Keys: credentials are encrypted with PROXYWHIRL_CACHE_ENCRYPTION_KEY (previous keys, comma \
separated, in PROXYWHIRL_CACHE_KEY_PREVIOUS; a proxywhirl 0.3.3 process sharing the cache fails \
to start with more than one there), else with the key file pw-cache.key in the L2 directory. \
Only `warm` creates a key file; the other commands need a key to exist. A Redis L3's URL comes \
from PW_CACHE_REDIS_URL (or the config's redis_url), never from the command line.

Exit codes: 0 success; 1 partial (something skipped or failed, reported; for `get`, the key is \
in no tier); 2 bad usage or unusable input (missing directory, unreadable database, invalid key), \
with a message naming the path or the key's source.

`--json` prints one JSON document on stdout instead of the summary (the exit code is the same). \
See docs/cli.md in the pw-cache sources for an example of each command.";

/// The `pw-cache` command line: operator commands for a proxywhirl-compatible proxy cache.
#[derive(Debug, Parser)]
#[command(
    name = "pw-cache",
    bin_name = "pw-cache",
    version,
    about = "Operator commands for a pw-cache (proxywhirl-compatible) proxy cache",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a JSON cache configuration (or the embedded defaults) and print the effective one.
    ShowConfig(ShowConfigArgs),
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
    /// Show what a cache holds: counts per tier of entries, expired, corrupt, health statuses, size.
    ///
    /// Every entry is read (and its credentials decrypted) without being used: nothing is
    /// counted as an access, promoted or removed. "corrupt" entries are those that cannot be
    /// read with the configured keys (damaged, or a credential under a key the ring lacks).
    /// Exit 1 when some are (they are left in place; `cleanup --remove-unreadable` removes
    /// them), exit 2 when the key opens none of the stored credentials.
    Stats(StatsArgs),
    /// Show one entry: every field (credentials as `***`, never the secret) and which tiers hold it.
    ///
    /// Reads the entry from each tier without using it (no access counted, no promotion, nothing
    /// removed, expired or not). The fields shown are those of the first tier that can read it,
    /// in lookup order (L2, then L3); a copy that differs is said to. Exit 1 when no tier holds
    /// the key, or a tier holds it but cannot read it.
    Get(GetArgs),
    /// List the entries of a cache, one row per key, without changing anything.
    ///
    /// Where `stats` counts per tier, `inspect` shows each entry: its key, the tiers holding it,
    /// whether it is live, expired or unreadable, when it expires, its health, whether it has a
    /// credential (never the credential), its source and its proxy URL. Every entry is read
    /// without being used, as `stats` reads them. Exit 1 when some are unreadable.
    Inspect(InspectArgs),
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
    /// Print the completion script of a shell for `pw-cache` on stdout.
    ///
    /// For example `pw-cache completions bash > ~/.local/share/bash-completion/completions/pw-cache`,
    /// or `pw-cache completions zsh > ~/.zfunc/_pw-cache`.
    Completions(CompletionsArgs),
}

/// Options of `show-config`.
#[derive(Debug, Clone, Args)]
pub struct ShowConfigArgs {
    /// A JSON config file; every field is optional and defaults as proxywhirl's.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print the configuration as one JSON document (it is JSON either way: accepted for every
    /// reading command alike).
    #[arg(long)]
    pub json: bool,
}

/// Which backend holds L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// 16 JSON Lines shard files `shard_NN.jsonl` (proxywhirl's default).
    Jsonl,
    /// One SQLite database, `l2_cache.db`.
    Sqlite,
}

/// Which backend holds L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum L3Backend {
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
pub struct CacheArgs {
    /// The L2 directory (`l2_cache_dir`): the JSONL shards or `l2_cache.db`, and the key file
    /// `pw-cache.key` when no key is set in the environment.
    #[arg(long, value_name = "DIR")]
    pub l2_dir: PathBuf,
    /// Which backend holds L2: `jsonl` (shard files) or `sqlite` (`l2_cache.db`).
    #[arg(long, value_name = "BACKEND", value_enum)]
    pub l2_backend: Backend,
    /// The L3 SQLite database file (`l3_database_path`); required with `--l3-backend sqlite`.
    #[arg(long, value_name = "PATH")]
    pub l3_db: Option<PathBuf>,
    /// Which backend holds L3: `sqlite` (`--l3-db`) or `redis` (URL from the config's
    /// `redis_url` or PW_CACHE_REDIS_URL).
    #[arg(long, value_name = "BACKEND", value_enum, default_value = "sqlite")]
    pub l3_backend: L3Backend,
    /// The Redis L3's namespace [default: the config's `redis_namespace`, else pw-cache].
    #[arg(long, value_name = "NAME")]
    pub redis_namespace: Option<String>,
    /// A JSON cache configuration (as `show-config --file` reads it) for the other settings:
    /// TTLs, per-source TTLs, tier bounds, `encryption_key`. The options above override its
    /// paths and backend; L1 and the background cleaner are always off in these commands.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The key file to use when no key is configured or set in the environment
    /// [default: pw-cache.key in the L2 directory].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Options of `migrate-jsonl`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The JSONL shard directory to read (it must exist; it is only read).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The directory of the SQLite L2 database `l2_cache.db` (both created if missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Migrate into a temporary copy of the target database and report what a real run would
    /// do, without creating or changing anything in `--to`.
    #[arg(long)]
    pub dry_run: bool,
    /// The key file to use when PROXYWHIRL_CACHE_ENCRYPTION_KEY is not set
    /// [default: pw-cache.key in the `--from` directory].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Print the report as one JSON document instead of the summary (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `warm`.
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// The file of proxies: `.json` (an array of objects), `.jsonl` (an object per line) or
    /// `.csv` (a header row with a `proxy_url` column).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Every entry's TTL in seconds (1 to 100 years) instead of the source's `per_source_ttl`
    /// or `default_ttl_seconds`.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub ttl: Option<u64>,
    /// How many bad rows to list (all are counted).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_issues: usize,
    /// Print the report as one JSON document instead of the summary, every bad row kept by the
    /// report listed (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The JSONL file to write (replaced atomically, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write each credential as `username_encrypted` / `password_encrypted`: its Fernet
    /// token under the cache's current key (never plaintext), so that `warm` into a cache with
    /// that key restores the credentials.
    #[arg(long)]
    pub encrypted_credentials: bool,
    /// Print the report as one JSON document instead of the summary (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Print one JSON object instead of the table (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `rotate-key`.
#[derive(Debug, Clone, Args)]
pub struct RotateKeyArgs {
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The configured key is a new key on purpose: rotate onto it even though only the key
    /// file's key opens what is stored (without it, that is refused as a likely typo).
    #[arg(long)]
    pub new_key: bool,
    /// Print the report as one JSON document instead of the summary (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Also remove every entry the keys cannot read (damaged records, credentials under a key
    /// the ring lacks; in JSONL, lines that are no entry). Nothing else ever removes them.
    /// Refused, like every command, when the key opens none of the stored credentials.
    #[arg(long)]
    pub remove_unreadable: bool,
    /// Print the report as one JSON document instead of the summary (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The cache key of the entry (as `inspect` lists it).
    #[arg(value_name = "KEY", required_unless_present = "url", conflicts_with = "url")]
    pub key: Option<String>,
    /// Look up the entry of this proxy URL instead (its key as proxywhirl generates it).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Print one JSON object instead of the fields (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Only the entries that are expired (readable, and past their expiry).
    #[arg(long, conflicts_with = "unreadable")]
    pub expired: bool,
    /// Only the entries some tier holding them cannot read.
    #[arg(long)]
    pub unreadable: bool,
    /// List at most this many rows (all are counted).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print one JSON object instead of the table (fields in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script of.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
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
