//! L3: the SQLite tier with health history, on-disk compatible both ways with proxywhirl
//! 0.3.3's `SQLiteCacheTier`.
//!
//! One database file (proxywhirl's default `.cache/db/proxywhirl.db`) with proxywhirl's two
//! tables, created with its own statements (specified in [`pw_cache::docs::formats`]):
//! - `cache_entries`: the 23 columns (the entry's fields, `created_at`, `updated_at`) and the
//!   indexes `idx_expires_at`, `idx_source`, `idx_health_status`, `idx_last_accessed`;
//! - `health_history`: one row per health check, `proxy_key` referencing
//!   `cache_entries(key) ON DELETE CASCADE`, indexes `idx_health_history_proxy` and
//!   `idx_health_history_time`.
//!
//! What this tier does that proxywhirl does not:
//! - `PRAGMA foreign_keys = ON` on every connection, so deleting an entry (delete, clear,
//!   expiry, eviction) deletes its history. proxywhirl never enables it and leaves orphans;
//!   orphans found in a database are counted when it opens ([`L3OpenReport`]) and can be
//!   removed ([`SqliteL3Tier::remove_orphaned_history`]), never a failure.
//! - Updating an entry keeps its `created_at` (proxywhirl resets it on every put) and its
//!   history (an upsert, not a delete and re-insert); `updated_at` moves.
//! - A health-history API: [`SqliteL3Tier::record_health_check`],
//!   [`SqliteL3Tier::health_history`], [`SqliteL3Tier::prune_health_history`].
//!
//! Opening a database whose `cache_entries` lacks the health columns (from before proxywhirl's
//! health monitoring) adds them, as proxywhirl's `_migrate_health_columns` does, within the
//! schema upgrade to version 1; `health_history` and the indexes are created if missing. Tables
//! whose columns are declared with types this tier cannot use are refused, untouched (see
//! [`crate::sqlite`], "Column types").
//! Pool, pragmas, timestamps, credentials, eviction and hit recording are shared with L2: see
//! [`crate::sqlite`].
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pw_cache_crypto::KeyRing;
use pw_cache_crypto::{Trust, private_fs, trust};
use pw_cache_model::timestamp::to_unix_seconds;
use pw_cache_model::{CacheTierConfig, OffsetDateTime, fields};
use rusqlite::{Connection, Transaction};

use super::row::Columns;
use super::schema::{ColumnKind, migrate, orders_by_use, require_columns, table_columns};
use super::statements::Layout;
use super::store::{Store, sql_error};
use crate::entry_codec::{CREATED_AT, UPDATED_AT};
use crate::error::TierError;
use crate::health_history::HealthHistory;
pub use crate::health_history::{HealthCheck, HealthRecord};
use pw_cache_model::limits::{MAX_KEY_BYTES, MAX_LAST_HEALTH_ERROR_BYTES, MAX_PROXY_URL_BYTES};

/// `cache_entries`, as proxywhirl 0.3.3 creates it (the text is what `sqlite_master` keeps).
const CREATE_ENTRIES: &str = "CREATE TABLE IF NOT EXISTS cache_entries (
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
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    -- Health monitoring fields (Feature 006)
                    last_health_check REAL,
                    consecutive_health_failures INTEGER DEFAULT 0,
                    consecutive_health_successes INTEGER DEFAULT 0,
                    recovery_attempt INTEGER DEFAULT 0,
                    next_check_time REAL,
                    last_health_error TEXT,
                    total_health_checks INTEGER DEFAULT 0,
                    total_health_check_failures INTEGER DEFAULT 0,
                    evicted_from_l1 INTEGER DEFAULT 0
                )";

/// `health_history`, as proxywhirl 0.3.3 creates it.
const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS health_history (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    proxy_key TEXT NOT NULL,
                    check_time REAL NOT NULL,
                    status TEXT NOT NULL,
                    response_time_ms REAL,
                    error_message TEXT,
                    check_url TEXT NOT NULL,
                    FOREIGN KEY (proxy_key) REFERENCES cache_entries(key) ON DELETE CASCADE
                )";

/// The six indexes, as proxywhirl 0.3.3 creates them.
const CREATE_INDEXES: [&str; 6] = [
    "CREATE INDEX IF NOT EXISTS idx_expires_at ON cache_entries(expires_at)",
    "CREATE INDEX IF NOT EXISTS idx_source ON cache_entries(source)",
    "CREATE INDEX IF NOT EXISTS idx_health_status ON cache_entries(health_status)",
    "CREATE INDEX IF NOT EXISTS idx_last_accessed ON cache_entries(last_accessed)",
    "CREATE INDEX IF NOT EXISTS idx_health_history_proxy ON health_history(proxy_key)",
    "CREATE INDEX IF NOT EXISTS idx_health_history_time ON health_history(check_time)",
];

/// The columns proxywhirl's `_migrate_health_columns` adds to an older `cache_entries`, with
/// their types, in its order.
pub const HEALTH_COLUMNS: [(&str, &str); 9] = [
    (fields::LAST_HEALTH_CHECK, "REAL"),
    (fields::CONSECUTIVE_HEALTH_FAILURES, "INTEGER DEFAULT 0"),
    (fields::CONSECUTIVE_HEALTH_SUCCESSES, "INTEGER DEFAULT 0"),
    (fields::RECOVERY_ATTEMPT, "INTEGER DEFAULT 0"),
    (fields::NEXT_CHECK_TIME, "REAL"),
    (fields::LAST_HEALTH_ERROR, "TEXT"),
    (fields::TOTAL_HEALTH_CHECKS, "INTEGER DEFAULT 0"),
    (fields::TOTAL_HEALTH_CHECK_FAILURES, "INTEGER DEFAULT 0"),
    (fields::EVICTED_FROM_L1, "INTEGER DEFAULT 0"),
];

/// The columns of `cache_entries` before the health columns, and what each holds (which decides
/// the types it may be declared with: see [`crate::sqlite`], "Column types").
const BASE_COLUMNS: [(&str, ColumnKind); 14] = [
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
    (CREATED_AT, ColumnKind::WrittenTime),
    (UPDATED_AT, ColumnKind::WrittenTime),
];

/// What each of [`HEALTH_COLUMNS`] holds, in the same order.
const HEALTH_KINDS: [ColumnKind; 9] = [
    ColumnKind::Time,
    ColumnKind::Count,
    ColumnKind::Count,
    ColumnKind::Count,
    ColumnKind::Time,
    ColumnKind::Text,
    ColumnKind::Count,
    ColumnKind::Count,
    ColumnKind::Flag,
];

/// The columns of `health_history`, and what each holds.
const HISTORY_COLUMNS: [(&str, ColumnKind); 7] = [
    ("id", ColumnKind::RowId),
    ("proxy_key", ColumnKind::Key),
    ("check_time", ColumnKind::Time),
    ("status", ColumnKind::Status),
    ("response_time_ms", ColumnKind::Real),
    ("error_message", ColumnKind::Text),
    ("check_url", ColumnKind::Text),
];

const INSERT_CHECK: &str = "INSERT INTO health_history (proxy_key, check_time, status, response_time_ms, \
                            error_message, check_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Columns 7 to 9: the byte lengths of the text columns, checked against their limits before
/// the text is read.
const SELECT_HISTORY: &str = "SELECT id, proxy_key, check_time, status, response_time_ms, error_message, \
                              check_url, length(CAST(proxy_key AS BLOB)), length(CAST(error_message AS BLOB)), \
                              length(CAST(check_url AS BLOB)) FROM health_history WHERE proxy_key = ?1 \
                              ORDER BY check_time DESC, id DESC LIMIT ?2";
const PRUNE_HISTORY: &str = "DELETE FROM health_history WHERE check_time < ?1";
const COUNT_ORPHANS: &str = "SELECT COUNT(*) FROM health_history WHERE NOT EXISTS \
                             (SELECT 1 FROM cache_entries WHERE cache_entries.key = health_history.proxy_key)";
const DELETE_ORPHANS: &str = "DELETE FROM health_history WHERE NOT EXISTS \
                              (SELECT 1 FROM cache_entries WHERE cache_entries.key = health_history.proxy_key)";

/// Schema version 0 (proxywhirl's, older, or an empty file) to 1: create the tables if
/// missing, add the health columns `cache_entries` lacks, create the indexes (after checking
/// the tables: ones this tier cannot use are left as they were). The columns added, in order.
fn upgrade(tx: &Transaction<'_>, path: &Path, orders_by_use: bool) -> Result<Vec<&'static str>, TierError> {
    tx.execute_batch(CREATE_ENTRIES)
        .map_err(sql_error("create table cache_entries", path))?;
    let have = table_columns(tx, "cache_entries").map_err(sql_error("read schema", path))?;
    let mut added = Vec::new();
    for (column, ty) in HEALTH_COLUMNS {
        if !have.iter().any(|c| c == column) {
            // Both names come from the constant above, never from input.
            tx.execute_batch(&format!("ALTER TABLE cache_entries ADD COLUMN {column} {ty}"))
                .map_err(sql_error("add health column", path))?;
            added.push(column);
        }
    }
    tx.execute_batch(CREATE_HISTORY)
        .map_err(sql_error("create table health_history", path))?;
    check_schema(tx, path, orders_by_use)?;
    for index in CREATE_INDEXES {
        tx.execute_batch(index).map_err(sql_error("create index", path))?;
    }
    Ok(added)
}

/// Creates or upgrades the schema, then checks it (what a probe runs on a database that may
/// have been removed and come back empty), for a tier that orders rows by `access_count`
/// (`ORDERS_BY_USE`) or not.
fn ensure_schema<const ORDERS_BY_USE: bool>(conn: &mut Connection, path: &Path) -> Result<(), TierError> {
    migrate(conn, path, |tx, _from| upgrade(tx, path, ORDERS_BY_USE).map(drop))?;
    check_schema(conn, path, ORDERS_BY_USE)
}

/// Fails unless both tables have every column this tier uses, each declared with a type it can
/// use (`orders_by_use`: the tier evicts by LFU, ordering rows by `access_count`).
fn check_schema(conn: &Connection, path: &Path, orders_by_use: bool) -> Result<(), TierError> {
    let mut entries = Vec::with_capacity(BASE_COLUMNS.len() + HEALTH_COLUMNS.len());
    entries.extend(BASE_COLUMNS);
    entries.extend(
        HEALTH_COLUMNS
            .iter()
            .zip(HEALTH_KINDS)
            .map(|((name, _), kind)| (*name, kind)),
    );
    require_columns(conn, path, "cache_entries", &entries, orders_by_use)?;
    require_columns(conn, path, "health_history", &HISTORY_COLUMNS, orders_by_use)
}

/// How many `health_history` rows belong to no entry.
fn count_orphans(conn: &Connection, path: &Path) -> Result<u64, TierError> {
    let n: i64 = conn
        .prepare_cached(COUNT_ORPHANS)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(sql_error("count orphaned history", path))?;
    Ok(n.max(0) as u64)
}

/// What opening the database found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L3OpenReport {
    /// The schema version the database had when it was upgraded (0 for a proxywhirl database
    /// or a new file), `None` when it was already current.
    pub schema_upgraded_from: Option<u32>,
    /// Health columns added to an older `cache_entries`, in order.
    pub added_columns: Vec<&'static str>,
    /// `health_history` rows whose `proxy_key` no entry has (left by proxywhirl, which never
    /// enables foreign keys). Reported, kept.
    pub orphaned_history: u64,
}

/// The SQLite L3 tier: see the module docs and [`crate::sqlite`] for the design.
#[derive(Debug)]
pub struct SqliteL3Tier {
    pub(super) store: Store,
    report: L3OpenReport,
}

impl SqliteL3Tier {
    /// Opens (creating its parent directories and the file if missing) the database at `path`.
    /// Entries hold at most `config.max_entries` under `config.eviction_policy`; credentials
    /// are encrypted with `ring`'s current key and decrypted with any of its keys. A proxywhirl
    /// database is upgraded to this crate's schema version (health columns added if missing);
    /// orphaned history rows are counted ([`SqliteL3Tier::open_report`]).
    ///
    /// Errors name the path: a directory that cannot be created ([`TierError::Io`]), a file
    /// that is not a database or cannot be opened or written ([`TierError::Sqlite`]), tables
    /// without the columns needed, a column declared with a type this tier cannot use (see
    /// [`crate::sqlite`], "Column types"; the reason names the table and the column) or a
    /// newer schema version ([`TierError::Schema`]), a directory that cannot be trusted under
    /// [`Trust::Strict`] ([`TierError::Untrusted`]; see [`SqliteL3Tier::open_trusting`]).
    pub fn open(path: impl AsRef<Path>, config: &CacheTierConfig, ring: Arc<KeyRing>) -> Result<Self, TierError> {
        Self::open_trusting(path, config, ring, Trust::Strict)
    }

    /// [`SqliteL3Tier::open`], the database's directory (created if missing; `.` for a bare
    /// file name) checked under `trust` before the database is created or opened
    /// ([`trust::check_dir`]).
    pub fn open_trusting(
        path: impl AsRef<Path>,
        config: &CacheTierConfig,
        ring: Arc<KeyRing>,
        trust: Trust,
    ) -> Result<Self, TierError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_fs::create_dir_all(parent).map_err(TierError::io("create database directory", parent))?;
            trust::check_dir(parent, trust)?;
        } else {
            trust::check_dir(Path::new("."), trust)?;
        }
        private_fs::precreate_file(&path).map_err(TierError::io("create database file", &path))?;
        let mut report = L3OpenReport::default();
        let orders_by_use = orders_by_use(config);
        let store = Store::open(
            path,
            Layout::L3,
            config,
            ring,
            |conn, path| {
                let mut added = Vec::new();
                report.schema_upgraded_from = migrate(conn, path, |tx, _from| {
                    added = upgrade(tx, path, orders_by_use)?;
                    Ok(())
                })?;
                report.added_columns = added;
                check_schema(conn, path, orders_by_use)?;
                report.orphaned_history = count_orphans(conn, path)?;
                Ok(())
            },
            if orders_by_use {
                ensure_schema::<true>
            } else {
                ensure_schema::<false>
            },
        )?;
        if report.orphaned_history > 0 {
            tracing::warn!(
                path = %store.path().display(),
                rows = report.orphaned_history,
                "health_history has rows of entries that no longer exist (left by proxywhirl, which does not \
                 enforce foreign keys); they are kept"
            );
        }
        Ok(Self { store, report })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// What opening the database found and did.
    pub fn open_report(&self) -> &L3OpenReport {
        &self.report
    }

    /// Records a health check; its row id.
    ///
    /// Errors: [`TierError::InvalidEntry`] when no entry has `check.proxy_key` (history belongs
    /// to an entry) or the response time is negative or not finite; nothing is stored then.
    pub fn record_health_check(&self, check: &HealthCheck) -> Result<i64, TierError> {
        self.store.health.record(|| {
            check.validate()?;
            let conn = self.store.conn()?;
            let mut stmt = conn
                .prepare_cached(INSERT_CHECK)
                .map_err(self.store.err("record health check"))?;
            let inserted = stmt.insert(rusqlite::params![
                check.proxy_key,
                to_unix_seconds(check.check_time),
                check.status.as_str(),
                check.response_time_ms,
                check.error_message,
                check.check_url,
            ]);
            match inserted {
                Ok(id) => Ok(id),
                Err(e)
                    if e.sqlite_error().map(|e| e.extended_code)
                        == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) =>
                {
                    Err(TierError::InvalidEntry {
                        key: check.proxy_key.clone(),
                        reason: "no cache entry has this key: health history belongs to an entry".to_owned(),
                    })
                }
                Err(e) => Err(self.store.err("record health check")(e)),
            }
        })
    }

    /// The health checks recorded for `proxy_key`, newest first (by check time, then id), at
    /// most `limit`. A row that cannot be read is a [`TierError::Corrupt`] naming its id.
    pub fn health_history(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError> {
        self.store.health.record(|| {
            let conn = self.store.conn()?;
            let mut stmt = conn
                .prepare_cached(SELECT_HISTORY)
                .map_err(self.store.err("read health history"))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut rows = stmt
                .query(rusqlite::params![proxy_key, limit])
                .map_err(self.store.err("read health history"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(self.store.err("read health history"))? {
                let id: i64 = row.get(0).map_err(self.store.err("read health history"))?;
                let col = Columns::new(row, proxy_key);
                let check = (|| {
                    for (index, field, limit) in [
                        (7, "proxy_key", MAX_KEY_BYTES),
                        (8, "error_message", MAX_LAST_HEALTH_ERROR_BYTES),
                        (9, "check_url", MAX_PROXY_URL_BYTES),
                    ] {
                        let len: Option<i64> = row.get(index).map_err(self.store.err("read health history"))?;
                        if let Some(len) = len.filter(|&len| len > limit as i64) {
                            return Err(TierError::Corrupt {
                                key: proxy_key.to_owned(),
                                reason: format!("{field} is {len} bytes long, more than the limit of {limit} bytes"),
                            });
                        }
                    }
                    Ok::<_, TierError>(HealthCheck {
                        proxy_key: col.text_at(1, "proxy_key")?,
                        check_time: col.time_at(2, "check_time")?,
                        status: col.status_at(3, "status")?,
                        response_time_ms: col.optional_real_at(4, "response_time_ms")?,
                        error_message: col.optional_text_at(5, "error_message")?,
                        check_url: col.text_at(6, "check_url")?,
                    })
                })()
                .map_err(|e| match e {
                    TierError::Corrupt { key, reason } => TierError::Corrupt {
                        key,
                        reason: format!("health_history row {id}: {reason}"),
                    },
                    other => other,
                })?;
                out.push(HealthRecord { id, check });
            }
            Ok(out)
        })
    }

    /// Deletes the health checks older than `older_than` (`check_time < older_than`), of every
    /// proxy; how many.
    pub fn prune_health_history(&self, older_than: OffsetDateTime) -> Result<usize, TierError> {
        self.execute(PRUNE_HISTORY, [to_unix_seconds(older_than)], "prune health history")
    }

    /// How many `health_history` rows belong to no entry now.
    pub fn orphaned_history(&self) -> Result<u64, TierError> {
        self.store
            .health
            .record(|| count_orphans(&*self.store.conn()?, self.store.path()))
    }

    /// Deletes the `health_history` rows that belong to no entry; how many.
    pub fn remove_orphaned_history(&self) -> Result<usize, TierError> {
        self.execute(DELETE_ORPHANS, [], "remove orphaned history")
    }

    /// Runs `sql` with `params` (`op` names it in errors); how many rows it changed, recorded
    /// in the tier's health.
    fn execute(&self, sql: &str, params: impl rusqlite::Params, op: &'static str) -> Result<usize, TierError> {
        self.store.health.record(|| {
            let conn = self.store.conn()?;
            let mut stmt = conn.prepare_cached(sql).map_err(self.store.err(op))?;
            stmt.execute(params).map_err(self.store.err(op))
        })
    }
}

/// The inherent methods of the same names.
impl HealthHistory for SqliteL3Tier {
    fn record_health_check(&self, check: &HealthCheck) -> Result<i64, TierError> {
        SqliteL3Tier::record_health_check(self, check)
    }

    fn health_history(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError> {
        SqliteL3Tier::health_history(self, proxy_key, limit)
    }

    fn prune_health_history(&self, older_than: OffsetDateTime) -> Result<usize, TierError> {
        SqliteL3Tier::prune_health_history(self, older_than)
    }
}
