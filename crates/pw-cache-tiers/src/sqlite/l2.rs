//! L2: the SQLite tier, on-disk compatible both ways with proxywhirl 0.3.3's `DiskCacheTier`.
//!
//! The file is `l2_cache.db` ([`DB_FILE_NAME`]) in the L2 directory, one table `l2_cache` with
//! proxywhirl's 13 columns and its two indexes (`idx_l2_expires_at`, `idx_l2_source`), created
//! with proxywhirl's own statements (specified in [`pw_cache::docs::formats`]). The table has no column
//! for the health-monitoring fields: an entry stored here reads back with them at their
//! defaults, as in proxywhirl.
//!
//! Pool, pragmas, timestamps, credentials, the schema version, eviction and hit recording are
//! shared with L3: see [`crate::sqlite`]. Upgrading a proxywhirl database (schema version 0)
//! creates whatever of the table and indexes is missing and records the version. A table whose
//! columns are declared with types this tier cannot use is refused, untouched (see
//! [`crate::sqlite`], "Column types").
//!
//! [`SqliteL2Tier::migrate_from_jsonl`] imports a JSONL tier's directory, as proxywhirl's
//! `DiskCacheTier.migrate_from_jsonl`, in one transaction.
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pw_cache_crypto::{KeyRing, Trust, private_fs, trust};
use pw_cache_model::{CacheEntry, CacheTierConfig, fields};
use rusqlite::{Connection, Transaction};

use super::row::EntryRow;
use super::schema::{ColumnKind, migrate, orders_by_use, require_columns};
use super::statements::Layout;
use super::store::{Store, sql_error};
use crate::error::TierError;
use crate::jsonl::JsonlTier;
use crate::tier::CacheTier;

/// The database's file name in the L2 directory.
pub const DB_FILE_NAME: &str = "l2_cache.db";

/// The table, as proxywhirl 0.3.3 creates it (the text is what `sqlite_master` keeps).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS l2_cache (
                    key TEXT PRIMARY KEY,
                    proxy_url TEXT NOT NULL,
                    username_encrypted BLOB,
                    password_encrypted BLOB,
                    source TEXT NOT NULL,
                    fetch_time REAL NOT NULL,
                    last_accessed REAL NOT NULL,
                    access_count INTEGER DEFAULT 0,
                    ttl_seconds INTEGER NOT NULL,
                    expires_at REAL NOT NULL,
                    health_status TEXT DEFAULT 'unknown',
                    failure_count INTEGER DEFAULT 0,
                    evicted_from_l1 INTEGER DEFAULT 0
                )";

/// The indexes, as proxywhirl 0.3.3 creates them.
const CREATE_INDEXES: [&str; 2] = [
    "CREATE INDEX IF NOT EXISTS idx_l2_expires_at ON l2_cache(expires_at)",
    "CREATE INDEX IF NOT EXISTS idx_l2_source ON l2_cache(source)",
];

/// The columns this tier reads and writes, and what each holds (which decides the types it may
/// be declared with: see [`crate::sqlite`], "Column types").
const COLUMNS: [(&str, ColumnKind); 13] = [
    (fields::KEY, ColumnKind::Key),
    (fields::PROXY_URL, ColumnKind::Text),
    (fields::USERNAME_ENCRYPTED, ColumnKind::Token),
    (fields::PASSWORD_ENCRYPTED, ColumnKind::Token),
    (fields::SOURCE, ColumnKind::Text),
    (fields::FETCH_TIME, ColumnKind::Time),
    (fields::LAST_ACCESSED, ColumnKind::Time),
    (fields::ACCESS_COUNT, ColumnKind::UseCount),
    (fields::TTL_SECONDS, ColumnKind::Count),
    (fields::EXPIRES_AT, ColumnKind::Time),
    (fields::HEALTH_STATUS, ColumnKind::Status),
    (fields::FAILURE_COUNT, ColumnKind::Count),
    (fields::EVICTED_FROM_L1, ColumnKind::Flag),
];

/// Schema version 0 (proxywhirl's, or an empty file) to 1: create what is missing (after
/// checking what exists: a table this tier cannot use is left as it was).
fn upgrade(tx: &Transaction<'_>, path: &Path, orders_by_use: bool) -> Result<(), TierError> {
    tx.execute_batch(CREATE_TABLE)
        .map_err(sql_error("create table l2_cache", path))?;
    check_schema(tx, path, orders_by_use)?;
    for index in CREATE_INDEXES {
        tx.execute_batch(index).map_err(sql_error("create index", path))?;
    }
    Ok(())
}

/// What [`SqliteL2Tier::migrate_from_jsonl`] did. Every line of the shard files is one of:
/// the live line of a migrated, skipped or failed key; a superseded line; a damaged line
/// (counted in `failed`); a blank line (not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Entries written: keys the database did not hold, or held differently.
    pub migrated: u64,
    /// Entries not written because the database already held them as they are (so running a
    /// migration twice writes nothing the second time).
    pub skipped: u64,
    /// Keys whose live line could not be read (not a valid entry, or credentials no key of
    /// the ring opens), plus lines that are not JSON or not an entry at all.
    pub failed: u64,
    /// Older lines of keys that a later line replaced (the JSONL reader's rule: the last line
    /// of a key wins); not migrated.
    pub superseded: u64,
    /// What failed: `(key, why)` for each key, `(directory, what)` for damaged lines.
    pub failures: Vec<(String, String)>,
}

/// The SQLite L2 tier: see the module docs and [`crate::sqlite`] for the design.
#[derive(Debug)]
pub struct SqliteL2Tier {
    pub(super) store: Store,
    dir: PathBuf,
    upgraded_from: Option<u32>,
}

impl SqliteL2Tier {
    /// Opens (creating the directory and the database if missing) `dir/l2_cache.db`. Entries
    /// hold at most `config.max_entries` under `config.eviction_policy`; credentials are
    /// encrypted with `ring`'s current key and decrypted with any of its keys. A proxywhirl
    /// database is upgraded to this crate's schema version (see [`crate::sqlite`]).
    ///
    /// Errors name the path: a directory that cannot be created ([`TierError::Io`]), a file
    /// that is not a database or cannot be opened or written ([`TierError::Sqlite`]), a table
    /// without the columns needed, a column declared with a type this tier cannot use (see
    /// [`crate::sqlite`], "Column types"; the reason names the column) or a newer schema
    /// version ([`TierError::Schema`]), a directory that cannot be trusted under
    /// [`Trust::Strict`] ([`TierError::Untrusted`]; see [`SqliteL2Tier::open_trusting`]).
    pub fn open(dir: impl AsRef<Path>, config: &CacheTierConfig, ring: Arc<KeyRing>) -> Result<Self, TierError> {
        Self::open_trusting(dir, config, ring, Trust::Strict)
    }

    /// [`SqliteL2Tier::open`], the directory (created if missing) checked under `trust` before
    /// the database in it is created or opened ([`trust::check_dir`]).
    pub fn open_trusting(
        dir: impl AsRef<Path>,
        config: &CacheTierConfig,
        ring: Arc<KeyRing>,
        trust: Trust,
    ) -> Result<Self, TierError> {
        let dir = dir.as_ref().to_path_buf();
        private_fs::create_dir_all(&dir).map_err(TierError::io("create cache directory", &dir))?;
        trust::check_dir(&dir, trust)?;
        let file = dir.join(DB_FILE_NAME);
        private_fs::precreate_file(&file).map_err(TierError::io("create database file", &file))?;
        let mut upgraded_from = None;
        let orders_by_use = orders_by_use(config);
        let store = Store::open(
            dir.join(DB_FILE_NAME),
            Layout::L2,
            config,
            ring,
            |conn, path| {
                upgraded_from = migrate(conn, path, |tx, _from| upgrade(tx, path, orders_by_use))?;
                check_schema(conn, path, orders_by_use)
            },
            if orders_by_use {
                ensure_schema::<true>
            } else {
                ensure_schema::<false>
            },
        )?;
        Ok(Self {
            store,
            dir,
            upgraded_from,
        })
    }

    /// The L2 directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file (`dir/l2_cache.db`).
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The schema version the database had when this tier upgraded it on opening (0 for a
    /// proxywhirl database or a new file), `None` when it was already current.
    pub fn schema_upgraded_from(&self) -> Option<u32> {
        self.upgraded_from
    }

    /// Imports the entries of a JSONL tier's directory `dir` (16 `shard_NN.jsonl` files, as
    /// read by [`JsonlTier`]: the last line of a key wins, credentials decrypted with this
    /// tier's key ring), as proxywhirl's `DiskCacheTier.migrate_from_jsonl` does.
    ///
    /// - All writes happen in one transaction: either every readable entry is stored, or (on
    ///   an error) nothing is.
    /// - Running it twice changes nothing the second time: an entry the database holds as it
    ///   is gets skipped. An entry held differently is replaced by the JSONL one.
    /// - Unreadable lines and entries do not stop it: they are counted and described in the
    ///   report.
    /// - The JSONL files are only read (under shared locks); `dir` must exist.
    /// - With `max_entries` set, the bound holds: entries are evicted by the policy as they
    ///   are stored.
    ///
    /// Errors: `dir` cannot be read ([`TierError::Io`], about the source, so not counted
    /// against this tier's health), or the database cannot be written.
    pub fn migrate_from_jsonl(&self, dir: impl AsRef<Path>) -> Result<MigrationReport, TierError> {
        let dir = dir.as_ref();
        let (entries, mut report) = read_jsonl(dir, self.store.ring_arc())?;
        let result = self.store.write("migrate from JSONL", |tx| {
            let mut evicted = 0;
            for entry in &entries {
                let wanted = Layout::L2.as_stored(entry);
                let held = match self
                    .store
                    .read(tx, &entry.key)
                    .and_then(|row| row.map(|stored| stored.open(self.store.ring())).transpose())
                {
                    Ok(held) => held,
                    // Never overwritten: unreadable is not stale (see the crate docs).
                    Err(e) if e.is_corrupt_entry() => {
                        report.failed += 1;
                        report.failures.push((
                            entry.key.clone(),
                            format!("the database holds an unreadable entry under this key, left in place: {e}"),
                        ));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if held.as_ref() == Some(&wanted) {
                    report.skipped += 1;
                    continue;
                }
                evicted += self
                    .store
                    .put_in(tx, &EntryRow::new(entry, self.store.ring(), Layout::L2)?)?;
                report.migrated += 1;
            }
            Ok(evicted)
        });
        let evicted = self.store.health.observe(result)?;
        self.store.count_evictions(evicted);
        tracing::info!(
            from = %dir.display(),
            to = %self.path().display(),
            migrated = report.migrated,
            skipped = report.skipped,
            failed = report.failed,
            "migrated JSONL cache to SQLite"
        );
        Ok(report)
    }
}

/// Creates or upgrades the schema, then checks it (what a probe runs on a database that may
/// have been removed and come back empty), for a tier that orders rows by `access_count`
/// (`ORDERS_BY_USE`) or not.
fn ensure_schema<const ORDERS_BY_USE: bool>(conn: &mut Connection, path: &Path) -> Result<(), TierError> {
    migrate(conn, path, |tx, _from| upgrade(tx, path, ORDERS_BY_USE))?;
    check_schema(conn, path, ORDERS_BY_USE)
}

/// Fails unless the table has the columns this tier uses, each declared with a type it can use
/// (`orders_by_use`: the tier evicts by LFU, ordering rows by `access_count`).
fn check_schema(conn: &Connection, path: &Path, orders_by_use: bool) -> Result<(), TierError> {
    require_columns(conn, path, "l2_cache", &COLUMNS, orders_by_use)
}

/// Every readable entry of the JSONL directory `dir`, and the report of what could not be read.
fn read_jsonl(dir: &Path, ring: &Arc<KeyRing>) -> Result<(Vec<CacheEntry>, MigrationReport), TierError> {
    // The source must exist: opening a JSONL tier would create it.
    let meta = std::fs::metadata(dir).map_err(TierError::io("read JSONL directory", dir))?;
    if !meta.is_dir() {
        return Err(TierError::Io {
            op: "read JSONL directory",
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let jsonl = JsonlTier::open(dir, &CacheTierConfig::unbounded(), Arc::clone(ring))?;
    let mut report = MigrationReport::default();
    let mut keys = jsonl.keys()?;
    keys.sort_unstable();
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        match jsonl.get(&key) {
            Ok(Some(entry)) => entries.push(entry),
            // Removed by another process since it was listed: nothing to migrate.
            Ok(None) => {}
            Err(e) if e.is_corrupt_entry() => {
                report.failed += 1;
                report.failures.push((key, e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    let damage = jsonl.damage();
    for (lines, what) in [
        (damage.undecodable_lines, "not JSON"),
        (damage.non_entry_lines, "JSON but not an entry"),
    ] {
        if lines > 0 {
            report.failed += lines;
            report.failures.push((
                dir.display().to_string(),
                format!("{lines} line(s) {what} in the shard files"),
            ));
        }
    }
    report.superseded = jsonl.dead_lines().saturating_sub(damage.skipped_lines());
    Ok((entries, report))
}
