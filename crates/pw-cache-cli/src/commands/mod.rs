//! The commands, one module each (each a `run` function filling the summary and returning how it
//! ended), and what they share: how a command ends, opening a cache from the command line's
//! options (checking first that an existing cache exists), describing keys and caches, in words
//! and in JSON.
//!
//! Nothing here prints a key, a token or a credential: keys are described by where they come
//! from, credentials are `***`, and the library's errors name sources and paths only.

/// Appends a line to a command's summary (`say!(out)`: an empty line). The summary is printed
/// on stdout when the command ends (see `crate::run_command`), so that a closed pipe is not a
/// panic.
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

pub mod cleanup;
pub mod completions;
pub mod export;
pub mod get;
pub mod inspect;
pub mod migrate_jsonl;
pub mod rotate_key;
pub mod show_config;
pub mod stats;
pub mod warm;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use pw_cache::tiers::jsonl::{NUM_SHARDS, shard_file_name};
use pw_cache::tiers::sqlite_l2::DB_FILE_NAME;
use pw_cache::{
    CacheConfig, CacheManager, CacheTierConfig, CacheTierType, ENV_CURRENT_KEY, ENV_PREVIOUS_KEYS, KeyCheck, KeyOrigin,
    KeyRing, L2BackendType, L3BackendType, TierStatus,
};

use serde_json::{Value, json};

use crate::cli::{CacheArgs, L3Backend};

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done: exit 0.
    Done,
    /// Something was skipped or failed, and reported: exit 1.
    Partial,
}

impl Outcome {
    /// [`Outcome::Partial`] when `partial`, else [`Outcome::Done`].
    pub fn partial_if(partial: bool) -> Self {
        if partial { Self::Partial } else { Self::Done }
    }

    /// The worse of the two.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self::partial_if(self == Self::Partial || other == Self::Partial)
    }
}

/// A command that could not run (bad usage or unusable input): exit 2 with this message, which
/// names the path or the key's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl Fatal {
    /// `context: error`.
    pub fn context(context: impl Display, error: impl Display) -> Self {
        Self(format!("{context}: {error}"))
    }
}

impl From<pw_cache::ManagerError> for Fatal {
    fn from(error: pw_cache::ManagerError) -> Self {
        // The library's messages name paths and key sources, never key material.
        Self(error.to_string())
    }
}

impl Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// What a command ends with: how it ended, or why it could not run.
pub type CmdResult = Result<Outcome, Fatal>;

/// Whether a command needs the cache to exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads or changes an existing cache: a missing directory, database or key is an error,
    /// and nothing is created.
    Existing,
    /// Fills a cache, creating its directories, database and (when no key is set) key file.
    CreateIfMissing,
}

/// Whether the environment variable `name` is set and not empty (an empty one counts as unset,
/// as in the library).
pub(crate) fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The configuration the options describe: `--config` (or the defaults), with the paths and
/// backend of the options, L1 and the background cleaner off (a one-shot command has no use
/// for either).
pub(crate) fn config_of(args: &CacheArgs) -> Result<CacheConfig, Fatal> {
    let base = match &args.config {
        Some(path) => {
            let text = fs::read_to_string(path)
                .map_err(|e| Fatal::context(format_args!("cannot read config file {}", path.display()), e))?;
            CacheConfig::from_json_str(&text)
                .map_err(|e| Fatal::context(path.display(), e))?
                .to_builder()
        }
        None => CacheConfig::builder(),
    };
    let mut builder = base
        .l1_config(CacheTierConfig::disabled())
        .enable_background_cleanup(false)
        .l2_backend(args.l2_backend.into())
        .l2_cache_dir(&args.l2_dir)
        .l3_backend(args.l3_backend.into());
    match (args.l3_backend, &args.l3_db) {
        (L3Backend::Sqlite, None) => {
            return Err(Fatal("--l3-db PATH is required with --l3-backend sqlite".to_owned()));
        }
        (_, Some(path)) => builder = builder.l3_database_path(path),
        (L3Backend::Redis, None) => {}
    }
    if let Some(namespace) = &args.redis_namespace {
        builder = builder.redis_namespace(namespace);
    }
    builder
        .build()
        .map_err(|e| Fatal::context("invalid cache configuration", e))
}

/// The key file the manager falls back on for `config`: `--key-file`, else `pw-cache.key` in
/// the L2 directory (beside the L3 database when L2 is disabled), as the library does.
pub(crate) fn key_file_of(args: &CacheArgs, config: &CacheConfig) -> PathBuf {
    match &args.key_file {
        Some(path) => path.clone(),
        None => pw_cache::default_key_file(config),
    }
}

/// Fails unless the key file exists, when it is where the key would come from.
pub(crate) fn require_key(config_has_key: bool, key_file: &Path) -> Result<(), Fatal> {
    if config_has_key || env_is_set(ENV_CURRENT_KEY) || key_file.exists() {
        return Ok(());
    }
    Err(Fatal(format!(
        "no encryption key: {ENV_CURRENT_KEY} is not set and there is no key file {}; set the variable \
         (previous keys in {ENV_PREVIOUS_KEYS}) or pass --key-file",
        key_file.display()
    )))
}

/// Fails unless `dir` is an existing directory.
pub(crate) fn require_dir(dir: &Path, what: &str, option: &str) -> Result<(), Fatal> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Fatal(format!("{what} {} is not a directory ({option})", dir.display()))),
        Err(e) => Err(missing(dir, what, option, &e)),
    }
}

/// `<what> <path> does not exist (<option>)`, or the I/O error when it is another.
fn missing(path: &Path, what: &str, option: &str, error: &std::io::Error) -> Fatal {
    if error.kind() == std::io::ErrorKind::NotFound {
        Fatal(format!("{what} {} does not exist ({option})", path.display()))
    } else {
        Fatal(format!("{what} {} cannot be used ({option}): {error}", path.display()))
    }
}

/// Fails unless `file` is an existing file.
fn require_file(file: &Path, what: &str, option: &str) -> Result<(), Fatal> {
    match fs::metadata(file) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Fatal(format!("{what} {} is not a file ({option})", file.display()))),
        Err(e) => Err(missing(file, what, option, &e)),
    }
}

/// Whether `dir` holds at least one JSONL shard file.
pub(crate) fn has_shards(dir: &Path) -> bool {
    (0..NUM_SHARDS).any(|i| dir.join(shard_file_name(i)).is_file())
}

/// Fails when the L2 directory holds the other backend's files only (a wrong `--l2-backend`
/// would read an empty cache, or write beside the real one).
fn check_backend(config: &CacheConfig) -> Result<(), Fatal> {
    if !config.l2_config().enabled {
        return Ok(());
    }
    let dir = config.l2_cache_dir();
    let (db, shards) = (dir.join(DB_FILE_NAME).is_file(), has_shards(dir));
    match config.l2_backend() {
        L2BackendType::Sqlite if shards && !db => Err(Fatal(format!(
            "{} holds JSONL shard files but no {DB_FILE_NAME}: use --l2-backend jsonl, or migrate it with \
             `pw-cache migrate-jsonl`",
            dir.display()
        ))),
        L2BackendType::Jsonl if db && !shards => Err(Fatal(format!(
            "{} holds {DB_FILE_NAME} but no JSONL shard file: use --l2-backend sqlite",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks that the cache `config` describes exists, without creating anything.
fn require_existing(config: &CacheConfig) -> Result<(), Fatal> {
    if config.l2_config().enabled {
        let dir = config.l2_cache_dir();
        require_dir(dir, "the L2 directory", "--l2-dir")?;
        if config.l2_backend() == L2BackendType::Sqlite {
            require_file(&dir.join(DB_FILE_NAME), "the SQLite L2 database", "--l2-dir")?;
        }
    }
    if config.l3_config().enabled && config.l3_backend() == L3BackendType::Sqlite {
        require_file(config.l3_database_path(), "the L3 database", "--l3-db")?;
    }
    Ok(())
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Fails when `path` is there but is not a SQLite database: not empty (an empty file is an empty
/// database) and not starting as one. What cannot be read is left to the library to report.
fn require_sqlite_or_empty(path: &Path, what: &str, option: &str) -> Result<(), Fatal> {
    use std::io::Read as _;
    let mut start = Vec::with_capacity(SQLITE_MAGIC.len());
    let read = fs::File::open(path).and_then(|file| file.take(SQLITE_MAGIC.len() as u64).read_to_end(&mut start));
    if read.is_ok() && !start.is_empty() && start != SQLITE_MAGIC {
        return Err(Fatal(format!(
            "{what} {} is not a SQLite database ({option})",
            path.display()
        )));
    }
    Ok(())
}

/// Fails when `dir` cannot be a directory the library creates or uses: it is there and is not a
/// directory, or the nearest of its parents that is there is not a directory.
fn require_dir_or_creatable(dir: &Path, what: &str, option: &str) -> Result<(), Fatal> {
    for path in dir.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if path == dir => {
                return Err(Fatal(format!("{what} {} is not a directory ({option})", dir.display())));
            }
            Ok(_) => {
                return Err(Fatal(format!(
                    "{what} {} cannot be created: {} is not a directory ({option})",
                    dir.display(),
                    path.display()
                )));
            }
            // Missing (or not searchable): look further up; the library reports what it hits.
            Err(_) => {}
        }
    }
    Ok(())
}

/// Fails when `file` cannot be a file the library creates or uses: it is there and is not a
/// file (or a SQLite database, when `sqlite`), or its directory cannot be one.
fn require_file_or_creatable(file: &Path, what: &str, option: &str, sqlite: bool) -> Result<(), Fatal> {
    match fs::metadata(file) {
        Ok(meta) if meta.is_file() => {
            if sqlite {
                require_sqlite_or_empty(file, what, option)?;
            }
            Ok(())
        }
        Ok(_) => Err(Fatal(format!("{what} {} is not a file ({option})", file.display()))),
        Err(_) => match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                require_dir_or_creatable(parent, &format!("the directory of {what}"), option)
            }
            _ => Ok(()),
        },
    }
}

/// Checks, without creating anything, that the library can create what is missing of the cache
/// `config` describes and use what is there: the L2 directory is a directory (or can be made
/// one), the databases are files and SQLite databases (or can be created), the key file is a
/// file (or can be created). What it cannot see (permissions, a full disk) the library reports.
fn require_creatable(config: &CacheConfig, key_file: &Path, key_option: &str) -> Result<(), Fatal> {
    if config.l2_config().enabled {
        let dir = config.l2_cache_dir();
        require_dir_or_creatable(dir, "the L2 directory", "--l2-dir")?;
        if config.l2_backend() == L2BackendType::Sqlite {
            require_file_or_creatable(&dir.join(DB_FILE_NAME), "the SQLite L2 database", "--l2-dir", true)?;
        }
    }
    if config.l3_config().enabled && config.l3_backend() == L3BackendType::Sqlite {
        require_file_or_creatable(config.l3_database_path(), "the L3 database", "--l3-db", true)?;
    }
    require_file_or_creatable(key_file, "the key file", key_option, false)
}

/// Opens the cache the options describe. With [`Access::Existing`] it must exist (directory,
/// databases, and a key: configured, in the environment, or the key file), and nothing is
/// created; with [`Access::CreateIfMissing`] the library creates what is missing, once it is
/// checked that it can (nothing is created when a path is taken by something else).
pub(crate) fn open_cache(args: &CacheArgs, access: Access) -> Result<CacheManager, Fatal> {
    open_cache_checked(args, access, KeyCheck::Strict)
}

/// [`open_cache`] with this check of the key against the stored credentials (see
/// [`KeyCheck`]): with the default, a key that opens none of them is refused (exit 2, the
/// message names where the key came from).
pub(crate) fn open_cache_checked(args: &CacheArgs, access: Access, check: KeyCheck) -> Result<CacheManager, Fatal> {
    let config = config_of(args)?;
    check_backend(&config)?;
    let key_file = key_file_of(args, &config);
    match access {
        Access::Existing => {
            require_existing(&config)?;
            require_key(config.encryption_key().is_some(), &key_file)?;
        }
        Access::CreateIfMissing => {
            let key_option = match (&args.key_file, config.l2_config().enabled) {
                (Some(_), _) => "--key-file",
                (None, true) => "--l2-dir",
                (None, false) => "--l3-db",
            };
            require_creatable(&config, &key_file, key_option)?;
        }
    }
    let mut builder = CacheManager::builder(config).key_check(check);
    if let Some(path) = &args.key_file {
        builder = builder.key_file(path);
    }
    let manager = builder.open()?;
    print_key_warnings(manager.key_ring());
    Ok(manager)
}

/// Prints on stderr what resolving the keys found worth a warning (a key file readable by
/// others ...): the library only logs them with `tracing`, which the commands do not show.
pub(crate) fn print_key_warnings(ring: &KeyRing) {
    for warning in ring.warnings() {
        eprintln!("warning: {warning}");
    }
}

/// Where the ring's keys come from, never the keys: `environment variable …, 1 previous key`.
pub(crate) fn describe_keys(ring: &KeyRing) -> String {
    let origin = match ring.origin() {
        KeyOrigin::Environment => format!("environment variable {ENV_CURRENT_KEY}"),
        KeyOrigin::Config => "the configuration's encryption_key".to_owned(),
        KeyOrigin::KeyFile { path, created: false } => format!("key file {}", path.display()),
        KeyOrigin::KeyFile { path, created: true } => format!(
            "key file {} (created now: keep it, the cached credentials cannot be read without it)",
            path.display()
        ),
        KeyOrigin::Explicit => "explicit keys".to_owned(),
    };
    let previous = ring.len().saturating_sub(1);
    format!(
        "{origin}, {previous} previous key{}",
        if previous == 1 { "" } else { "s" }
    )
}

/// `L2 jsonl <dir> · L3 <db>`, the enabled tiers of `config`.
pub(crate) fn describe_cache(config: &CacheConfig) -> String {
    let mut parts = Vec::new();
    if config.l2_config().enabled {
        parts.push(format!(
            "L2 {} {}",
            config.l2_backend(),
            config.l2_cache_dir().display()
        ));
    }
    if config.l3_config().enabled {
        parts.push(format!("L3 {}", config.l3_database_path().display()));
    }
    if parts.is_empty() {
        "no disk tier enabled".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// The disk tiers the manager had to skip after repeated failures during the run, each
/// reported on stderr: the counts printed may be missing what they held.
pub(crate) fn report_degraded(manager: &CacheManager) -> Outcome {
    let mut outcome = Outcome::Done;
    for tier in [CacheTierType::L2, CacheTierType::L3] {
        if manager.tier_status(tier) == TierStatus::Degraded {
            eprintln!("warning: the {tier} tier failed repeatedly during this run and was skipped");
            outcome = Outcome::Partial;
        }
    }
    outcome
}

/// Closes the manager (flushing what the tiers batch); a failure is reported on stderr.
pub(crate) fn close(manager: CacheManager) -> Outcome {
    let outcome = report_degraded(&manager);
    match manager.close() {
        Ok(()) => outcome,
        Err(e) => {
            eprintln!("warning: closing the cache: {e}");
            Outcome::Partial
        }
    }
}

/// Where the ring's keys come from, as JSON (never the keys): `{"origin": "environment",
/// "key_file": null, "previous": 1}`; `origin` is `config`, `environment`, `key_file` or
/// `explicit`, `key_file` the file when the current key comes from one.
pub(crate) fn keys_json(ring: &KeyRing) -> Value {
    let (origin, key_file) = match ring.origin() {
        KeyOrigin::Environment => ("environment", None),
        KeyOrigin::Config => ("config", None),
        KeyOrigin::KeyFile { path, .. } => ("key_file", Some(path.display().to_string())),
        KeyOrigin::Explicit => ("explicit", None),
    };
    json!({
        "origin": origin,
        "key_file": key_file,
        "previous": ring.len().saturating_sub(1),
    })
}

/// Whether resolving the keys created the key file now (`warm` into a cache without a key).
pub(crate) fn key_file_created(ring: &KeyRing) -> bool {
    matches!(ring.origin(), KeyOrigin::KeyFile { created: true, .. })
}

/// The cache `config` describes, as JSON: `l2_backend`, `l2_dir`, `l3_backend`, `l3_db` (null
/// for a disabled tier; `l3_db` null for a Redis L3).
pub(crate) fn cache_json(config: &CacheConfig) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert(
        "l2_backend".to_owned(),
        json!(config.l2_config().enabled.then(|| config.l2_backend().to_string())),
    );
    out.insert(
        "l2_dir".to_owned(),
        json!(
            config
                .l2_config()
                .enabled
                .then(|| config.l2_cache_dir().display().to_string())
        ),
    );
    out.insert(
        "l3_db".to_owned(),
        json!(
            (config.l3_config().enabled && config.l3_backend() == L3BackendType::Sqlite)
                .then(|| config.l3_database_path().display().to_string())
        ),
    );
    out.insert("l3_backend".to_owned(), json!(config.l3_backend().as_str()));
    out
}

/// A report's JSON object: the cache's fields ([`cache_json`]), `keys` ([`keys_json`]), then
/// `fields` (an object).
pub(crate) fn report_json(manager: &CacheManager, fields: Value) -> Value {
    let mut out = cache_json(manager.config());
    out.insert("keys".to_owned(), keys_json(manager.key_ring()));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// Appends `value` to the summary as one JSON document (indented).
pub(crate) fn say_json(out: &mut String, value: &Value) -> Result<(), Fatal> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Fatal::context("cannot print the report", e))?;
    say!(out, "{text}");
    Ok(())
}

/// `12.3 KiB` for a byte count.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn outcomes_combine() {
        assert_eq!(Outcome::Done.and(Outcome::Done), Outcome::Done);
        assert_eq!(Outcome::Done.and(Outcome::Partial), Outcome::Partial);
        assert_eq!(Outcome::partial_if(true), Outcome::Partial);
    }
}
