//! What the two SQLite tiers share: the connection pool and its per-connection pragmas, the
//! schema version, the mapping between an entry and its row, and the store that runs the
//! statements both tiers use. [`crate::sqlite_l2`] and [`crate::sqlite_l3`] own their tables'
//! definitions and what only they do (JSONL migration; health history).
//!
//! # Connections
//!
//! An r2d2 pool of up to [`MAX_CONNECTIONS`] connections (grown on demand from one), and in
//! front of it one *spare*: the connection the last operation gave back, handed to the next
//! without r2d2's checkout (`Store::conn`; 7 % of the replay's mixed phase). Each
//! connection, when made, gets:
//! - a **busy handler** that retries a locked database for about [`BUSY_TIMEOUT`] (every 50 µs
//!   for the first 5 ms, then every millisecond), so two writers — threads of this process or
//!   other processes — wait for each other instead of failing, and without SQLite's default
//!   backoff, which sleeps up to 100 ms at a time;
//! - `synchronous = NORMAL` and `foreign_keys = ON`;
//! - a page cache of up to [`PAGE_CACHE_KIB`] (SQLite's default is 2 MiB): a large cache's
//!   lookups otherwise read their index and table pages from the file again and again (at 1M
//!   entries get_hit ran 2.4× slower than at 10k; with 32 MiB, 1.7×). SQLite allocates the
//!   cache as it reads pages, so a small database costs no more than before;
//! - a cache of [`STATEMENT_CACHE_CAPACITY`] prepared statements: every statement is prepared
//!   once per connection (`prepare_cached`);
//! - a WAL hook ([`crate::checkpoint::note_wal_frames`]) in place of SQLite's automatic
//!   checkpoint: a connection going back to the pool after a commit that filled the log asks
//!   the tier's checkpoint thread to copy it into the database file ([`crate::checkpoint`]).
//!
//! The database is put in WAL mode when the tier opens (it is a property of the file): readers
//! never wait for a writer, nor for each other. With `synchronous = NORMAL` in WAL mode a
//! commit is durable once it returns as far as a crash of the process is concerned; a power
//! loss can lose the last transactions, never corrupt the file.
//!
//! No lock of this crate is held across database I/O: connections come from the pool, and
//! SQLite's own locks serialize writers. Every read-modify-write runs in a `BEGIN IMMEDIATE`
//! transaction, which takes the write lock up front (a deferred transaction that upgrades can
//! fail with `SQLITE_BUSY` without waiting).
//!
//! # Rows
//!
//! Timestamps are REAL Unix seconds ([`pw_cache_model::timestamp::to_unix_seconds`], read back
//! in UTC with [`pw_cache_model::timestamp::from_unix_seconds`]: Python's conversions, to the
//! microsecond). A credential is a BLOB of its Fernet token's bytes, NULL when there is none; an
//! empty string is a credential like any other and is stored encrypted (proxywhirl stores NULL
//! for it). On read, NULL and an empty value are no credential, a TEXT token is read like a BLOB.
//! A value that does not fit its field (a negative count, text in a REAL column, an unknown
//! health status, a time outside years 1..=9999) makes the entry corrupt
//! ([`TierError::Corrupt`], naming the column), never the tier.
//!
//! # Schema version
//!
//! `PRAGMA user_version` records the schema: proxywhirl's files have 0; this crate's schema is
//! [`SCHEMA_VERSION`]. Opening a database below it upgrades it in one `BEGIN IMMEDIATE`
//! transaction (each tier says what an upgrade does) and records the version; a database above
//! it (written by a later pw-cache) is refused with [`TierError::Schema`]. The tables keep
//! proxywhirl's definitions exactly, so proxywhirl keeps reading and writing them.
//!
//! # Eviction
//!
//! With `max_entries` set, a put of a new key runs in a `BEGIN IMMEDIATE` transaction: it
//! counts the entries and, at the bound, deletes the entries that go first under the policy —
//! **LRU** smallest `last_accessed`, **LFU** smallest `access_count` then `last_accessed`,
//! **FIFO** smallest rowid (insertion order: an update keeps its rowid; proxywhirl's
//! `INSERT OR REPLACE` re-inserts) — in one `DELETE`. The count is exact inside the
//! transaction, so the bound holds with any number of writing processes; it walks the smallest
//! index (SQLite keeps no row count), which is what a bounded put of a new key pays beyond an
//! unbounded one, plus a key lookup. Choosing the victims
//! may scan the table (only L3's `last_accessed` has an index), so a put at the bound evicts
//! a batch: the entries needed plus `max_entries / 64`
//! ([`crate::jsonl::EVICTION_BATCH_DIVISOR`]), amortizing the scan over that many puts.
//!
//! LRU and LFU need hits recorded: a get hit on a bounded LRU or LFU tier notes
//! (`last_accessed = now`, `access_count + 1`) in memory; the notes are written in one
//! transaction every [`TOUCH_BATCH`] hits, before any eviction, and on close. So a get costs one
//! indexed read, plus a share of a batched update. Hits noted by other processes count once
//! they are written. A put of a key drops its pending notes: the entry put carries the caller's
//! view of its use, and a put is not itself a use: the entry's own `last_accessed` and
//! `access_count` are stored as given. Unbounded tiers and FIFO record nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use pw_cache_crypto::{KeyRing, private_fs};
use pw_cache_model::timestamp::{self, from_unix_seconds, to_unix_seconds};
use pw_cache_model::{
    AccessRecord, CacheEntry, CacheTierConfig, EvictionPolicy, HealthDetail, HealthStatus, OffsetDateTime, Secret,
};
use r2d2::{ManageConnection, Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, ToSql, Transaction, TransactionBehavior};

use crate::checkpoint::{self, Checkpointer};
use crate::error::TierError;
use crate::jsonl::EVICTION_BATCH_DIVISOR;
use crate::tier::TierHealth;
use crate::touches::{Touch, Touches};

/// The schema version this crate writes in `PRAGMA user_version` (proxywhirl's files have 0).
pub const SCHEMA_VERSION: u32 = 1;

/// How long an operation waits for another connection's lock before failing with
/// `SQLITE_BUSY`; also how long it waits for a pooled connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements cached per connection (more than either tier uses).
pub const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Most connections a tier's pool holds.
pub const MAX_CONNECTIONS: u32 = 8;

/// The most page cache one connection keeps, in KiB (32 MiB; so at most
/// [`MAX_CONNECTIONS`] × 32 MiB per tier, reached only by a database that large read by that
/// many threads at once).
pub const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// Get hits noted in memory before they are written (bounded LRU and LFU tiers).
pub const TOUCH_BATCH: usize = 256;

/// Busy-handler calls that sleep [`BUSY_SPIN_SLEEP`] before the handler sleeps a millisecond.
const BUSY_SPINS: i32 = 100;
const BUSY_SPIN_SLEEP: Duration = Duration::from_micros(50);

/// The busy handler: `true` to retry. About 5 ms of short sleeps, then 1 ms sleeps up to
/// [`BUSY_TIMEOUT`] in all.
fn busy_wait(attempt: i32) -> bool {
    const LONG_SLEEPS: i32 = (BUSY_TIMEOUT.as_millis() as i32) - 5;
    if attempt < BUSY_SPINS {
        std::thread::sleep(BUSY_SPIN_SLEEP);
        true
    } else if attempt < BUSY_SPINS + LONG_SLEEPS {
        std::thread::sleep(Duration::from_millis(1));
        true
    } else {
        false
    }
}

/// The per-connection setup (see the module docs).
fn init_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_wait))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Replaces the automatic checkpoint: see crate::checkpoint.
    conn.wal_hook(Some(checkpoint::note_wal_frames));
    Ok(())
}

/// A use count as a SQLite integer (a count beyond `i64::MAX` is stored as `i64::MAX`).
fn count_param(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Maps a SQLite error to [`TierError::Sqlite`].
pub(crate) fn sql_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(rusqlite::Error) -> TierError + 'a {
    move |source| TierError::Sqlite {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The columns of `table`, in order (empty when there is no such table).
pub(crate) fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |row| row.get::<_, String>(0))?;
    names.collect()
}

/// Fails with [`TierError::Schema`] unless `table` has every column of `required`.
pub(crate) fn require_columns(conn: &Connection, path: &Path, table: &str, required: &[&str]) -> Result<(), TierError> {
    let have = table_columns(conn, table).map_err(sql_error("read schema", path))?;
    if have.is_empty() {
        return Err(TierError::Schema {
            path: path.to_path_buf(),
            reason: format!("there is no table {table}"),
        });
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TierError::Schema {
            path: path.to_path_buf(),
            reason: format!("table {table} has no column {}", missing.join(", ")),
        })
    }
}

/// Brings the schema to [`SCHEMA_VERSION`]: `upgrade(tx, from_version)` runs in one
/// `BEGIN IMMEDIATE` transaction when the recorded version is lower. Returns the version the
/// database had when it was upgraded, `None` when it was current.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    upgrade: impl FnOnce(&Transaction<'_>, u32) -> Result<(), TierError>,
) -> Result<Option<u32>, TierError> {
    let read_version = |conn: &Connection| -> Result<u32, TierError> {
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql_error("read schema version", path))?;
        u32::try_from(version)
            .ok()
            .filter(|v| *v <= SCHEMA_VERSION)
            .ok_or_else(|| TierError::Schema {
                path: path.to_path_buf(),
                reason: format!(
                    "schema version {version} is not one this pw-cache knows (0..={SCHEMA_VERSION}): written by a \
                     later version?"
                ),
            })
    };
    if read_version(conn)? == SCHEMA_VERSION {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error("upgrade schema", path))?;
    // Another process may have upgraded it meanwhile.
    let version = read_version(&tx)?;
    if version == SCHEMA_VERSION {
        return Ok(None);
    }
    upgrade(&tx, version)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql_error("record schema version", path))?;
    tx.commit().map_err(sql_error("upgrade schema", path))?;
    tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "upgraded cache database schema");
    Ok(Some(version))
}

/// Which of the two tables a [`Store`] holds: the statements and the columns differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `l2_cache`: the 13 common columns.
    L2,
    /// `cache_entries`: the common columns, the 8 health columns, `created_at`, `updated_at`.
    L3,
}

/// The statements of one table.
#[derive(Debug)]
struct Statements {
    get: &'static str,
    exists: &'static str,
    upsert: &'static str,
    delete: &'static str,
    delete_all: &'static str,
    count: &'static str,
    /// Every row, for the bound: SQLite counts them from the smallest index's pages without
    /// decoding a row (`count`'s filter on the key reads every row).
    count_rows: &'static str,
    keys: &'static str,
    touch: &'static str,
    record_access: &'static str,
    health_detail: &'static str,
    /// Every row's `get` columns, then its rowid: eviction candidates in the policy's order.
    candidates_lru: &'static str,
    candidates_lfu: &'static str,
    candidates_fifo: &'static str,
    /// Every expired row's `get` columns, then its rowid.
    expired: &'static str,
    /// Every row's `get` columns, then its rowid.
    all_rows: &'static str,
    /// Deletes one row by rowid.
    delete_rowid: &'static str,
    /// Deletes one expired row by rowid if its tokens are still the ones given (?3, ?4).
    delete_expired_rowid: &'static str,
    /// Credential columns of the first and the last rows holding one (`LIMIT ?1`).
    sample_first: &'static str,
    sample_last: &'static str,
}

/// The 13 columns both tables have, in `l2_cache`'s order (parameters ?1..?13).
macro_rules! common_columns {
    () => {
        "key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
         access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1"
    };
}

/// Every common column but the key, set from the upserted row.
macro_rules! common_updates {
    () => {
        "proxy_url = excluded.proxy_url, username_encrypted = excluded.username_encrypted, \
         password_encrypted = excluded.password_encrypted, source = excluded.source, \
         fetch_time = excluded.fetch_time, last_accessed = excluded.last_accessed, \
         access_count = excluded.access_count, ttl_seconds = excluded.ttl_seconds, \
         expires_at = excluded.expires_at, health_status = excluded.health_status, \
         failure_count = excluded.failure_count, evicted_from_l1 = excluded.evicted_from_l1"
    };
}

/// The 8 health columns of `cache_entries` (parameters ?14..?21 in the L3 upsert).
macro_rules! health_columns {
    () => {
        "last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
         next_check_time, last_health_error, total_health_checks, total_health_check_failures"
    };
}

macro_rules! statements {
    ($table:literal, select: $select:expr, upsert: $upsert:expr, record_access: $record:expr, health_detail: $detail:expr) => {
        Statements {
            get: concat!("SELECT ", $select, " FROM ", $table, " WHERE key = ?1"),
            exists: concat!("SELECT 1 FROM ", $table, " WHERE key = ?1"),
            upsert: $upsert,
            delete: concat!("DELETE FROM ", $table, " WHERE key = ?1"),
            delete_all: concat!("DELETE FROM ", $table),
            // The rows `keys` lists: a key that is not TEXT (NULL, written by something else)
            // is not an entry anyone can look up.
            count: concat!("SELECT COUNT(*) FROM ", $table, " WHERE typeof(key) = 'text'"),
            count_rows: concat!("SELECT COUNT(*) FROM ", $table),
            keys: concat!("SELECT key FROM ", $table),
            touch: concat!(
                "UPDATE ",
                $table,
                " SET last_accessed = max(last_accessed, ?2), access_count = access_count + ?3 WHERE key = ?1"
            ),
            record_access: $record,
            health_detail: $detail,
            candidates_lru: concat!(
                "SELECT ",
                $select,
                ", rowid FROM ",
                $table,
                " ORDER BY last_accessed, rowid LIMIT ?1"
            ),
            candidates_lfu: concat!(
                "SELECT ",
                $select,
                ", rowid FROM ",
                $table,
                " ORDER BY access_count, last_accessed, rowid LIMIT ?1"
            ),
            candidates_fifo: concat!("SELECT ", $select, ", rowid FROM ", $table, " ORDER BY rowid LIMIT ?1"),
            expired: concat!("SELECT ", $select, ", rowid FROM ", $table, " WHERE expires_at <= ?1"),
            all_rows: concat!("SELECT ", $select, ", rowid FROM ", $table),
            delete_rowid: concat!("DELETE FROM ", $table, " WHERE rowid = ?1"),
            delete_expired_rowid: concat!(
                "DELETE FROM ",
                $table,
                " WHERE rowid = ?1 AND expires_at <= ?2 AND username_encrypted IS ?3 AND password_encrypted IS ?4"
            ),
            sample_first: concat!(
                "SELECT username_encrypted, password_encrypted FROM ",
                $table,
                " WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL ORDER BY rowid LIMIT ?1"
            ),
            sample_last: concat!(
                "SELECT username_encrypted, password_encrypted FROM ",
                $table,
                " WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL ORDER BY rowid DESC LIMIT ?1"
            ),
        }
    };
}

static L2_STATEMENTS: Statements = statements!(
    "l2_cache",
    select: common_columns!(),
    upsert: concat!(
        "INSERT INTO l2_cache (",
        common_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(key) DO UPDATE SET ",
        common_updates!()
    ),
    record_access: "UPDATE l2_cache SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4) WHERE key = ?1 AND last_accessed <= ?3",
    // L2 has no health columns: never prepared for it.
    health_detail: ""
);

// created_at is set on insert only (proxywhirl resets it on every put); updated_at moves.
static L3_STATEMENTS: Statements = statements!(
    "cache_entries",
    select: concat!(common_columns!(), ", ", health_columns!()),
    upsert: concat!(
        "INSERT INTO cache_entries (",
        common_columns!(),
        ", ",
        health_columns!(),
        ", created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?22) ON CONFLICT(key) DO UPDATE SET ",
        common_updates!(),
        ", last_health_check = excluded.last_health_check, \
         consecutive_health_failures = excluded.consecutive_health_failures, \
         consecutive_health_successes = excluded.consecutive_health_successes, \
         recovery_attempt = excluded.recovery_attempt, next_check_time = excluded.next_check_time, \
         last_health_error = excluded.last_health_error, total_health_checks = excluded.total_health_checks, \
         total_health_check_failures = excluded.total_health_check_failures, updated_at = excluded.updated_at"
    ),
    record_access: "UPDATE cache_entries SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4), updated_at = ?5 WHERE key = ?1 AND last_accessed <= ?3",
    health_detail: concat!("SELECT ", health_columns!(), " FROM cache_entries WHERE key = ?1")
);

impl Layout {
    fn statements(self) -> &'static Statements {
        match self {
            Layout::L2 => &L2_STATEMENTS,
            Layout::L3 => &L3_STATEMENTS,
        }
    }

    /// The index of the rowid after the `get` columns in the statements that add it.
    fn rowid_column(self) -> usize {
        match self {
            Layout::L2 => 13,
            Layout::L3 => 21,
        }
    }

    /// `entry` as this table gives it back: fields it has no column for at their defaults,
    /// timestamps through their REAL encoding (which keeps the microsecond within years
    /// 1697..2242).
    pub(crate) fn as_stored(self, entry: &CacheEntry) -> CacheEntry {
        let through_real = |t: OffsetDateTime| from_unix_seconds(to_unix_seconds(t)).unwrap_or(t);
        let mut e = entry.clone();
        e.fetch_time = through_real(e.fetch_time);
        e.last_accessed = through_real(e.last_accessed);
        e.expires_at = through_real(e.expires_at);
        match self {
            Layout::L2 => {
                e.last_health_check = None;
                e.consecutive_health_failures = 0;
                e.consecutive_health_successes = 0;
                e.recovery_attempt = 0;
                e.next_check_time = None;
                e.last_health_error = None;
                e.total_health_checks = 0;
                e.total_health_check_failures = 0;
            }
            Layout::L3 => {
                e.last_health_check = e.last_health_check.map(through_real);
                e.next_check_time = e.next_check_time.map(through_real);
            }
        }
        e
    }
}

/// An entry as its row's values, credentials encrypted: what a put binds.
pub(crate) struct EntryRow<'a> {
    entry: &'a CacheEntry,
    username: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    fetch_time: f64,
    last_accessed: f64,
    access_count: i64,
    ttl_seconds: i64,
    expires_at: f64,
    failure_count: i64,
    evicted_from_l1: i64,
    last_health_check: Option<f64>,
    consecutive_health_failures: i64,
    consecutive_health_successes: i64,
    recovery_attempt: i64,
    next_check_time: Option<f64>,
    total_health_checks: i64,
    total_health_check_failures: i64,
    /// `created_at` (a new row) and `updated_at` (L3 only).
    now: f64,
}

impl<'a> EntryRow<'a> {
    /// Checks and converts `entry` for `layout`; encrypts its credentials with the ring's
    /// current key.
    pub(crate) fn new(entry: &'a CacheEntry, ring: &KeyRing, layout: Layout) -> Result<Self, TierError> {
        if entry.key.is_empty() {
            return Err(TierError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        let int = |field: &str, value: u64| {
            i64::try_from(value).map_err(|_| TierError::InvalidEntry {
                key: entry.key.clone(),
                reason: format!("{field} {value} does not fit a SQLite INTEGER"),
            })
        };
        let seal = |secret: &Option<Secret>| secret.as_ref().map(|s| ring.encrypt(s).into_bytes());
        Ok(Self {
            username: seal(&entry.username),
            password: seal(&entry.password),
            fetch_time: to_unix_seconds(entry.fetch_time),
            last_accessed: to_unix_seconds(entry.last_accessed),
            access_count: int("access_count", entry.access_count)?,
            ttl_seconds: int("ttl_seconds", entry.ttl_seconds)?,
            expires_at: to_unix_seconds(entry.expires_at),
            failure_count: int("failure_count", entry.failure_count)?,
            evicted_from_l1: i64::from(entry.evicted_from_l1),
            last_health_check: entry.last_health_check.map(to_unix_seconds),
            consecutive_health_failures: int("consecutive_health_failures", entry.consecutive_health_failures)?,
            consecutive_health_successes: int("consecutive_health_successes", entry.consecutive_health_successes)?,
            recovery_attempt: int("recovery_attempt", entry.recovery_attempt)?,
            next_check_time: entry.next_check_time.map(to_unix_seconds),
            total_health_checks: int("total_health_checks", entry.total_health_checks)?,
            total_health_check_failures: int("total_health_check_failures", entry.total_health_check_failures)?,
            now: match layout {
                Layout::L2 => 0.0,
                Layout::L3 => to_unix_seconds(timestamp::now_utc()),
            },
            entry,
        })
    }

    /// Runs the layout's upsert with this row.
    fn upsert(&self, conn: &Connection, layout: Layout) -> rusqlite::Result<usize> {
        let e = self.entry;
        let params: [&dyn ToSql; 22] = [
            &e.key,
            &e.proxy_url,
            &self.username,
            &self.password,
            &e.source,
            &self.fetch_time,
            &self.last_accessed,
            &self.access_count,
            &self.ttl_seconds,
            &self.expires_at,
            &e.health_status.as_str(),
            &self.failure_count,
            &self.evicted_from_l1,
            &self.last_health_check,
            &self.consecutive_health_failures,
            &self.consecutive_health_successes,
            &self.recovery_attempt,
            &self.next_check_time,
            &e.last_health_error,
            &self.total_health_checks,
            &self.total_health_check_failures,
            &self.now,
        ];
        let params = match layout {
            Layout::L2 => &params[..13],
            Layout::L3 => &params[..],
        };
        conn.prepare_cached(layout.statements().upsert)?.execute(params)
    }
}

/// A row as read: every field but the credentials, which are still tokens.
pub(crate) struct StoredEntry {
    entry: CacheEntry,
    username: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
}

impl StoredEntry {
    /// The entry, its credentials decrypted with any key of `ring`.
    pub(crate) fn open(self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        let StoredEntry {
            mut entry,
            username,
            password,
        } = self;
        let open = |token: Option<Vec<u8>>| {
            token
                .map(|bytes| ring.decrypt_bytes(&bytes))
                .transpose()
                .map_err(|source| TierError::Crypto {
                    key: entry.key.clone(),
                    source,
                })
        };
        let username = open(username)?;
        let password = open(password)?;
        entry.username = username;
        entry.password = password;
        Ok(entry)
    }
}

/// Reads the values of a row of the layout's `get` statement, naming the column of any value
/// that does not fit. `key` names the entry in errors.
pub(crate) fn read_row(row: &Row<'_>, layout: Layout, key: &str) -> Result<StoredEntry, TierError> {
    let col = Columns { row, key };
    let mut entry = CacheEntry {
        key: col.text(0, "key")?,
        proxy_url: col.text(1, "proxy_url")?,
        username: None,
        password: None,
        source: col.text(4, "source")?,
        fetch_time: col.time(5, "fetch_time")?,
        last_accessed: col.time(6, "last_accessed")?,
        access_count: col.count(7, "access_count")?,
        ttl_seconds: col.count(8, "ttl_seconds")?,
        expires_at: col.time(9, "expires_at")?,
        health_status: col.status(10, "health_status")?,
        failure_count: col.count(11, "failure_count")?,
        evicted_from_l1: col.flag(12, "evicted_from_l1")?,
        last_health_check: None,
        consecutive_health_failures: 0,
        consecutive_health_successes: 0,
        recovery_attempt: 0,
        next_check_time: None,
        last_health_error: None,
        total_health_checks: 0,
        total_health_check_failures: 0,
    };
    if layout == Layout::L3 {
        entry.last_health_check = col.optional_time(13, "last_health_check")?;
        entry.consecutive_health_failures = col.count(14, "consecutive_health_failures")?;
        entry.consecutive_health_successes = col.count(15, "consecutive_health_successes")?;
        entry.recovery_attempt = col.count(16, "recovery_attempt")?;
        entry.next_check_time = col.optional_time(17, "next_check_time")?;
        entry.last_health_error = col.optional_text(18, "last_health_error")?;
        entry.total_health_checks = col.count(19, "total_health_checks")?;
        entry.total_health_check_failures = col.count(20, "total_health_check_failures")?;
    }
    Ok(StoredEntry {
        username: col.token(2, "username_encrypted")?,
        password: col.token(3, "password_encrypted")?,
        entry,
    })
}

/// Typed reads of one row's values; a value that does not fit is [`TierError::Corrupt`].
pub(crate) struct Columns<'r, 'k> {
    /// The row.
    pub(crate) row: &'r Row<'r>,
    /// The entry's key, for errors.
    pub(crate) key: &'k str,
}

impl Columns<'_, '_> {
    fn corrupt(&self, column: &str, what: impl std::fmt::Display) -> TierError {
        TierError::Corrupt {
            key: self.key.to_owned(),
            reason: format!("column {column}: {what}"),
        }
    }

    fn value(&self, i: usize, column: &str) -> Result<ValueRef<'_>, TierError> {
        self.row.get_ref(i).map_err(|e| self.corrupt(column, e))
    }

    fn found(value: ValueRef<'_>) -> &'static str {
        match value {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an INTEGER",
            ValueRef::Real(_) => "a REAL",
            ValueRef::Text(_) => "TEXT",
            ValueRef::Blob(_) => "a BLOB",
        }
    }

    /// TEXT (UTF-8), or NULL.
    pub(crate) fn optional_text(&self, i: usize, column: &str) -> Result<Option<String>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| self.corrupt(column, "TEXT that is not UTF-8")),
            other => Err(self.corrupt(column, format_args!("expected TEXT, found {}", Self::found(other)))),
        }
    }

    /// TEXT (UTF-8).
    pub(crate) fn text(&self, i: usize, column: &str) -> Result<String, TierError> {
        self.optional_text(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected TEXT, found NULL"))
    }

    /// A REAL (or INTEGER) number of seconds, or NULL.
    pub(crate) fn optional_real(&self, i: usize, column: &str) -> Result<Option<f64>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(x) => Ok(Some(x)),
            ValueRef::Integer(n) => Ok(Some(n as f64)),
            other => Err(self.corrupt(column, format_args!("expected a REAL, found {}", Self::found(other)))),
        }
    }

    /// A REAL Unix time, read as Python reads it, or NULL.
    pub(crate) fn optional_time(&self, i: usize, column: &str) -> Result<Option<OffsetDateTime>, TierError> {
        self.optional_real(i, column)?
            .map(|x| from_unix_seconds(x).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A REAL Unix time.
    pub(crate) fn time(&self, i: usize, column: &str) -> Result<OffsetDateTime, TierError> {
        self.optional_time(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected a REAL, found NULL"))
    }

    /// A non-negative INTEGER.
    fn count(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) => u64::try_from(n).map_err(|_| self.corrupt(column, format_args!("{n} is negative"))),
            other => Err(self.corrupt(
                column,
                format_args!("expected an INTEGER, found {}", Self::found(other)),
            )),
        }
    }

    /// A flag: non-zero is true; NULL is false (as proxywhirl's L2 reads it).
    fn flag(&self, i: usize, column: &str) -> Result<bool, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(false),
            ValueRef::Integer(n) => Ok(n != 0),
            ValueRef::Real(x) => Ok(x != 0.0),
            other => Err(self.corrupt(
                column,
                format_args!("expected an INTEGER, found {}", Self::found(other)),
            )),
        }
    }

    /// A health status (exact lowercase TEXT).
    pub(crate) fn status(&self, i: usize, column: &str) -> Result<HealthStatus, TierError> {
        self.text(i, column)?.parse().map_err(|e| self.corrupt(column, e))
    }

    /// A credential token: the bytes of a BLOB (or TEXT); NULL or empty is no credential.
    fn token(&self, i: usize, column: &str) -> Result<Option<Vec<u8>>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok((!bytes.is_empty()).then(|| bytes.to_vec())),
            other => Err(self.corrupt(column, format_args!("expected a BLOB, found {}", Self::found(other)))),
        }
    }
}

/// The connection pool, closed by taking it out.
type SqlitePool = Pool<SqliteConnectionManager>;

/// A pool of connections to `path`, each set up by `init_connection`, made on demand.
fn new_pool(path: &Path) -> SqlitePool {
    Pool::builder()
        .max_size(MAX_CONNECTIONS)
        .min_idle(Some(1))
        .test_on_check_out(false)
        .connection_timeout(BUSY_TIMEOUT)
        .build_unchecked(SqliteConnectionManager::file(path).with_init(init_connection))
}

/// A connection from a store's pool. Going back to the pool, it asks for a WAL checkpoint when
/// a commit made through it left the log long enough (see [`crate::checkpoint`]).
pub(crate) struct Conn<'a> {
    /// `Some` until the drop.
    conn: Option<PooledConnection<SqliteConnectionManager>>,
    store: &'a Store,
    /// The store's pool generation when the connection was handed out.
    generation: u64,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // `None` only inside `drop`.
        self.conn
            .as_deref()
            .unwrap_or_else(|| unreachable!("a connection used after its drop"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a connection used after its drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        self.store.checkpointer.after_commit(&conn);
        // Kept aside for the next operation, unless another connection is, or the connection
        // is inside a transaction (left open by an error: it goes back to the pool as
        // before), or the pool was replaced or closed since it was handed out.
        if conn.is_autocommit()
            && let Ok(mut spare) = self.store.spare.try_lock()
            && spare.is_none()
            && self.store.generation.load(Ordering::Acquire) == self.generation
        {
            *spare = Some(conn);
        }
    }
}

/// One table of entries in one database file, behind a pool: what both tiers run.
#[derive(Debug)]
pub(crate) struct Store {
    layout: Layout,
    path: PathBuf,
    pool: RwLock<Option<SqlitePool>>,
    /// The connection the last operation returned, kept out of the pool for the next one
    /// (see [`Store::conn`]).
    spare: Mutex<Option<PooledConnection<SqliteConnectionManager>>>,
    /// Changed (under `spare`'s lock) when the pool is replaced or closed: a connection of an
    /// earlier pool is not kept as the spare.
    generation: AtomicU64,
    ring: Arc<KeyRing>,
    max_entries: Option<u64>,
    policy: EvictionPolicy,
    /// `Some` for bounded LRU and LFU tiers.
    touches: Option<Touches>,
    evictions: AtomicU64,
    /// Unreadable rows that cleanup and eviction met and left in place.
    unreadable_skipped: AtomicU64,
    /// Whether the bound was exceeded because only unreadable rows were left to evict (warned
    /// once).
    over_bound_warned: std::sync::atomic::AtomicBool,
    pub(crate) health: TierHealth,
    /// Copies the WAL into the database file in the background.
    pub(crate) checkpointer: Checkpointer,
    /// Creates the tables when missing (a database file removed under a running tier comes
    /// back empty): run by [`Store::probe`].
    ensure_schema: SchemaFn,
}

/// A function that creates or checks a tier's schema on a connection.
pub(crate) type SchemaFn = fn(&mut Connection, &Path) -> Result<(), TierError>;

impl Store {
    /// Opens (creating it if missing) the database at `path`: WAL mode, `schema` run on a first
    /// connection (migrations, checks), then the pool.
    pub(crate) fn open(
        path: PathBuf,
        layout: Layout,
        config: &CacheTierConfig,
        ring: Arc<KeyRing>,
        schema: impl FnOnce(&mut Connection, &Path) -> Result<(), TierError>,
        ensure_schema: SchemaFn,
    ) -> Result<Self, TierError> {
        let manager = SqliteConnectionManager::file(&path).with_init(init_connection);
        let mut first = manager.connect().map_err(sql_error("open database", &path))?;
        // Several processes creating the database at once: the switch to WAL can be refused
        // with SQLITE_BUSY at once (no busy handler call); retry it within the busy timeout.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match first.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(BUSY_SPIN_SLEEP);
                }
                other => break other.map_err(sql_error("set WAL mode", &path))?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "cache database is not in WAL mode");
        }
        schema(&mut first, &path)?;
        drop(first);
        drop(manager);
        let pool = new_pool(&path);
        let tracks_hits = config.max_entries.is_some() && config.eviction_policy != EvictionPolicy::Fifo;
        Ok(Self {
            layout,
            checkpointer: Checkpointer::new(&path),
            path,
            pool: RwLock::new(Some(pool)),
            spare: Mutex::new(None),
            generation: AtomicU64::new(0),
            ring,
            max_entries: config.max_entries,
            policy: config.eviction_policy,
            touches: tracks_hits.then(Touches::default),
            ensure_schema,
            evictions: AtomicU64::new(0),
            unreadable_skipped: AtomicU64::new(0),
            over_bound_warned: std::sync::atomic::AtomicBool::new(false),
            health: TierHealth::new(),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The key ring.
    pub(crate) fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The key ring, shared.
    pub(crate) fn ring_arc(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Maps a SQLite error of `op` on this database.
    pub(crate) fn err<'a>(&'a self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> TierError + 'a {
        sql_error(op, &self.path)
    }

    /// A connection from the pool ([`TierError::Closed`] after [`Store::close`]).
    ///
    /// The connection the last operation gave back is kept aside (one, for whichever thread
    /// comes next) and handed out without going through the pool: r2d2's checkout and
    /// check-in take its mutex and read the clock five times, 4 % of a SQLite-L2 hit, which
    /// checks out two connections (L2, L3). A thread that finds the spare taken uses the
    /// pool. The spare is dropped when the pool is replaced ([`Store::probe`]) or closed.
    pub(crate) fn conn(&self) -> Result<Conn<'_>, TierError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(conn) = self.spare.try_lock().ok().and_then(|mut spare| spare.take()) {
            return Ok(Conn {
                conn: Some(conn),
                store: self,
                generation,
            });
        }
        // Clone the pool (an Arc) and let go of the lock before waiting for a connection.
        let pool = self
            .pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| TierError::Closed {
                path: self.path.clone(),
            })?;
        let conn = pool.get().map_err(|source| TierError::Pool {
            path: self.path.clone(),
            source,
        })?;
        Ok(Conn {
            conn: Some(conn),
            store: self,
            generation,
        })
    }

    /// Drops the spare connection (back to its pool) and keeps connections in use now from
    /// becoming the spare: the pool is being replaced or closed.
    fn drop_spare(&self) {
        let spare = {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            self.generation.fetch_add(1, Ordering::AcqRel);
            spare.take()
        };
        drop(spare);
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed when `f` succeeds.
    pub(crate) fn write<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, TierError>,
    ) -> Result<R, TierError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err(op))?;
        let out = f(&tx)?;
        tx.commit().map_err(self.err(op))?;
        Ok(out)
    }

    /// Entries evicted to stay within `max_entries` since the tier opened.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The stored entry under `key`, credentials still encrypted.
    pub(crate) fn read(&self, conn: &Connection, key: &str) -> Result<Option<StoredEntry>, TierError> {
        let mut stmt = conn
            .prepare_cached(self.layout.statements().get)
            .map_err(self.err("read entry"))?;
        let mut rows = stmt.query([key]).map_err(self.err("read entry"))?;
        match rows.next().map_err(self.err("read entry"))? {
            Some(row) => read_row(row, self.layout, key).map(Some),
            None => Ok(None),
        }
    }

    /// The entry under `key`, decrypted, without noting a hit.
    pub(crate) fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        // The connection goes back to the pool before decrypting.
        let stored = self.read(&*self.conn()?, key)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        stored.open(&self.ring).map(Some).inspect_err(|e| {
            tracing::warn!(key, path = %self.path.display(), error = %e, "unreadable entry in cache database");
        })
    }

    /// A write transaction that rewrites the schema version with its own value: it takes the
    /// write lock and commits a page, and changes nothing.
    pub(crate) fn probe(&self) -> Result<(), TierError> {
        // Connections opened while the file could not be written stay read-only (and share
        // that state through the -shm file): probe, and serve afterwards, with new ones.
        {
            let mut pool = self.pool.write().unwrap_or_else(PoisonError::into_inner);
            if pool.is_none() {
                return Err(TierError::Closed {
                    path: self.path.clone(),
                });
            }
            // The old pool's connections close when the last one in use is returned.
            *pool = Some(new_pool(&self.path));
        }
        self.drop_spare();
        // A file removed under the tier comes back empty: private, in WAL mode, with the tables.
        private_fs::precreate_file(&self.path).map_err(TierError::io("create database file", &self.path))?;
        {
            let mut conn = self.conn()?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(self.err("probe"))?;
            (self.ensure_schema)(&mut conn, &self.path)?;
        }
        self.write("probe", |tx| {
            let version: u32 = tx
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(self.err("probe"))?;
            tx.pragma_update(None, "user_version", version)
                .map_err(self.err("probe"))
        })
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let Some(entry) = self.peek(key)? else {
            return Ok(None);
        };
        if let Some(touches) = &self.touches
            && let Some(batch) = touches.record(key, to_unix_seconds(timestamp::now_utc()))
            && let Err(e) = self.write("record hits", |tx| self.apply_touches(tx, batch))
        {
            // Hits only order evictions: losing a batch of them is not worth failing a get.
            tracing::warn!(path = %self.path.display(), error = %e, "could not record cache hits");
        }
        Ok(Some(entry))
    }

    fn apply_touches(&self, conn: &Connection, batch: HashMap<String, Touch>) -> Result<(), TierError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut stmt = conn
            .prepare_cached(self.layout.statements().touch)
            .map_err(self.err("record hits"))?;
        for (key, t) in &batch {
            stmt.execute(rusqlite::params![key, t.last, count_param(t.hits)])
                .map_err(self.err("record hits"))?;
        }
        Ok(())
    }

    /// Writes the hits noted so far.
    pub(crate) fn flush_touches(&self) -> Result<(), TierError> {
        match &self.touches {
            Some(touches) => {
                let batch = touches.take();
                if batch.is_empty() {
                    return Ok(());
                }
                self.write("record hits", |tx| self.apply_touches(tx, batch))
            }
            None => Ok(()),
        }
    }

    /// Records the uses in `records` in one transaction (see [`CacheTier::record_accesses`]);
    /// how many rows changed.
    pub(crate) fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        if records.is_empty() {
            return Ok(0);
        }
        let updated_at = to_unix_seconds(timestamp::now_utc());
        self.write("record uses", |tx| {
            let mut stmt = tx
                .prepare_cached(self.layout.statements().record_access)
                .map_err(self.err("record uses"))?;
            let mut changed = 0;
            for r in records {
                let (key, count, last) = (&r.key, count_param(r.access_count), to_unix_seconds(r.last_accessed));
                let evicted = i64::from(r.evicted_from_l1);
                changed += match self.layout {
                    Layout::L2 => stmt.execute(rusqlite::params![key, count, last, evicted]),
                    Layout::L3 => stmt.execute(rusqlite::params![key, count, last, evicted, updated_at]),
                }
                .map_err(self.err("record uses"))?;
            }
            Ok(changed)
        })
    }

    /// The health-check detail under `key` (L3's table only; L2's has none).
    pub(crate) fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        if self.layout == Layout::L2 {
            return Ok(self.peek(key)?.map(|e| HealthDetail::of(&e)));
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(self.layout.statements().health_detail)
            .map_err(self.err("read health detail"))?;
        let mut rows = stmt.query([key]).map_err(self.err("read health detail"))?;
        let Some(row) = rows.next().map_err(self.err("read health detail"))? else {
            return Ok(None);
        };
        let col = Columns { row, key };
        Ok(Some(HealthDetail {
            last_health_check: col.optional_time(0, "last_health_check")?,
            consecutive_health_failures: col.count(1, "consecutive_health_failures")?,
            consecutive_health_successes: col.count(2, "consecutive_health_successes")?,
            recovery_attempt: col.count(3, "recovery_attempt")?,
            next_check_time: col.optional_time(4, "next_check_time")?,
            last_health_error: col.optional_text(5, "last_health_error")?,
            total_health_checks: col.count(6, "total_health_checks")?,
            total_health_check_failures: col.count(7, "total_health_check_failures")?,
        }))
    }

    pub(crate) fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        let row = EntryRow::new(entry, &self.ring, self.layout)?;
        if self.max_entries.is_none() {
            // One statement: an autocommit upsert, no read first.
            row.upsert(&*self.conn()?, self.layout)
                .map_err(self.err("write entry"))?;
            return Ok(());
        }
        let evicted = self.write("write entry", |tx| self.put_in(tx, &row))?;
        self.count_evictions(evicted);
        Ok(())
    }

    /// [`CacheTier::put_if_absent_with`]: the check, `still_below` and the write in one write
    /// transaction (encryption done before it).
    pub(crate) fn put_if_absent_with(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Result<bool, TierError> {
        let row = EntryRow::new(entry, &self.ring, self.layout)?;
        let outcome = self.write("promote entry", |tx| {
            if self.contains_in(tx, &entry.key)? || !still_below() {
                return Ok(None);
            }
            self.put_in(tx, &row).map(Some)
        })?;
        Ok(outcome.map(|evicted| self.count_evictions(evicted)).is_some())
    }

    /// Adds entries evicted by a committed transaction to the count.
    pub(crate) fn count_evictions(&self, evicted: u64) {
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
            tracing::debug!(path = %self.path.display(), evicted, "evicted cache entries");
        }
    }

    /// Stores `row` in the transaction `tx`, evicting first when the tier is at its bound;
    /// how many entries were evicted.
    pub(crate) fn put_in(&self, tx: &Transaction<'_>, row: &EntryRow<'_>) -> Result<u64, TierError> {
        let key = &row.entry.key;
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let mut evicted = 0;
        if let Some(max) = self.max_entries
            && !self.contains_in(tx, key)?
        {
            let n = self.count_in(tx, self.layout.statements().count_rows)?;
            if n >= max {
                evicted = self.evict(tx, n, max)?;
            }
        }
        row.upsert(tx, self.layout).map_err(self.err("write entry"))?;
        Ok(evicted)
    }

    /// Deletes the entries that go first, to make room for one more under `max` (plus a
    /// batch); `n` entries are held. Unreadable rows are never evicted (see the crate docs,
    /// "Unreadable entries"): candidates are read in the policy's order and the readable ones
    /// deleted; when fewer are readable than needed, the tier stays above its bound.
    fn evict(&self, tx: &Transaction<'_>, n: u64, max: u64) -> Result<u64, TierError> {
        if let Some(touches) = &self.touches {
            self.apply_touches(tx, touches.take())?;
        }
        let need =
            usize::try_from((n - max + 1).saturating_add(max / EVICTION_BATCH_DIVISOR).min(n)).unwrap_or(usize::MAX);
        let s = self.layout.statements();
        let sql = match self.policy {
            EvictionPolicy::Lru => s.candidates_lru,
            EvictionPolicy::Lfu => s.candidates_lfu,
            EvictionPolicy::Fifo => s.candidates_fifo,
        };
        // Most often the first `need` candidates are all readable; else look further.
        let mut limit = need.saturating_add(8);
        let (victims, skipped) = loop {
            let mut stmt = tx.prepare_cached(sql).map_err(self.err("evict entries"))?;
            let mut rows = stmt
                .query([i64::try_from(limit).unwrap_or(i64::MAX)])
                .map_err(self.err("evict entries"))?;
            let (mut victims, mut skipped, mut seen) = (Vec::with_capacity(need), 0u64, 0usize);
            while victims.len() < need
                && let Some(row) = rows.next().map_err(self.err("evict entries"))?
            {
                seen += 1;
                let rowid: i64 = row.get(self.layout.rowid_column()).map_err(self.err("evict entries"))?;
                if self.row_is_readable(row) {
                    victims.push(rowid);
                } else {
                    skipped += 1;
                }
            }
            if victims.len() == need || seen < limit {
                break (victims, skipped);
            }
            limit = limit.saturating_mul(4);
        };
        let mut stmt = tx.prepare_cached(s.delete_rowid).map_err(self.err("evict entries"))?;
        let mut deleted = 0;
        for rowid in &victims {
            deleted += stmt.execute([rowid]).map_err(self.err("evict entries"))? as u64;
        }
        self.note_unreadable_skipped(skipped);
        if victims.len() < need && !self.over_bound_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %self.path.display(),
                unreadable = skipped,
                "cache tier above max_entries: the entries left to evict are unreadable, and unreadable entries are \
                 never evicted (remove them explicitly if they are garbage)"
            );
        }
        Ok(deleted)
    }

    /// Whether a row of a statement that selects the `get` columns can be read: every value
    /// fits its field and every credential token opens with the ring (the plaintext is dropped,
    /// and zeroized, at once).
    fn row_is_readable(&self, row: &Row<'_>) -> bool {
        let key = match row.get_ref(0) {
            Ok(ValueRef::Text(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => return false,
        };
        read_row(row, self.layout, &key)
            .and_then(|stored| stored.open(&self.ring))
            .is_ok()
    }

    /// Counts unreadable rows met and left in place.
    fn note_unreadable_skipped(&self, n: u64) {
        if n > 0 {
            self.unreadable_skipped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Unreadable rows cleanup and eviction met and left in place since the tier opened.
    pub(crate) fn unreadable_skipped(&self) -> u64 {
        self.unreadable_skipped.load(Ordering::Relaxed)
    }

    /// Up to `limit` stored credential tokens: from the first and the last rows holding one.
    pub(crate) fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        let conn = self.conn()?;
        let s = self.layout.statements();
        let half = i64::try_from(limit.div_ceil(2)).unwrap_or(i64::MAX);
        let mut tokens = Vec::new();
        for sql in [s.sample_first, s.sample_last] {
            let mut stmt = conn.prepare_cached(sql).map_err(self.err("sample credentials"))?;
            let mut rows = stmt.query([half]).map_err(self.err("sample credentials"))?;
            while let Some(row) = rows.next().map_err(self.err("sample credentials"))? {
                for i in 0..2 {
                    if let Ok(ValueRef::Blob(bytes) | ValueRef::Text(bytes)) = row.get_ref(i)
                        && !bytes.is_empty()
                        && tokens.len() < limit
                        && !tokens.iter().any(|t: &Vec<u8>| t.as_slice() == bytes)
                    {
                        tokens.push(bytes.to_vec());
                    }
                }
            }
        }
        Ok(tokens)
    }

    /// The operator's removal of every unreadable row (see [`CacheTier::remove_unreadable`]),
    /// in one write transaction; how many.
    pub(crate) fn remove_unreadable(&self) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            self.flush_touches()?;
            touches.take();
        }
        let s = self.layout.statements();
        self.write("remove unreadable entries", |tx| {
            let mut doomed = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(s.all_rows)
                    .map_err(self.err("remove unreadable entries"))?;
                let mut rows = stmt.query([]).map_err(self.err("remove unreadable entries"))?;
                while let Some(row) = rows.next().map_err(self.err("remove unreadable entries"))? {
                    if !self.row_is_readable(row) {
                        let rowid: i64 = row
                            .get(self.layout.rowid_column())
                            .map_err(self.err("remove unreadable entries"))?;
                        doomed.push(rowid);
                    }
                }
            }
            let mut stmt = tx
                .prepare_cached(s.delete_rowid)
                .map_err(self.err("remove unreadable entries"))?;
            let mut removed = 0;
            for rowid in doomed {
                removed += stmt.execute([rowid]).map_err(self.err("remove unreadable entries"))?;
            }
            Ok(removed)
        })
    }

    fn contains_in(&self, conn: &Connection, key: &str) -> Result<bool, TierError> {
        let mut stmt = conn
            .prepare_cached(self.layout.statements().exists)
            .map_err(self.err("look up key"))?;
        stmt.exists([key]).map_err(self.err("look up key"))
    }

    /// What `sql` (`count`: the entries `keys` lists; `count_rows`: every row) counts.
    fn count_in(&self, conn: &Connection, sql: &str) -> Result<u64, TierError> {
        let mut stmt = conn.prepare_cached(sql).map_err(self.err("count entries"))?;
        let n: i64 = stmt
            .query_row([], |row| row.get(0))
            .map_err(self.err("count entries"))?;
        Ok(n.max(0) as u64)
    }

    pub(crate) fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.contains_in(&*self.conn()?, key)
    }

    pub(crate) fn size(&self) -> Result<usize, TierError> {
        let n = self.count_in(&*self.conn()?, self.layout.statements().count)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn delete(&self, key: &str) -> Result<bool, TierError> {
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(self.layout.statements().delete)
            .map_err(self.err("delete entry"))?;
        Ok(stmt.execute([key]).map_err(self.err("delete entry"))? > 0)
    }

    pub(crate) fn clear(&self) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            touches.take();
        }
        self.write("clear entries", |tx| {
            tx.prepare_cached(self.layout.statements().delete_all)
                .and_then(|mut stmt| stmt.execute([]))
                .map_err(self.err("clear entries"))
        })
    }

    /// Every key held; a key that is not TEXT (written by something else) is left out, with a
    /// warning.
    pub(crate) fn keys(&self) -> Result<Vec<String>, TierError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(self.layout.statements().keys)
            .map_err(self.err("list keys"))?;
        let mut rows = stmt.query([]).map_err(self.err("list keys"))?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next().map_err(self.err("list keys"))? {
            match row.get_ref(0).map_err(self.err("list keys"))? {
                ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(key) => keys.push(key.to_owned()),
                    Err(_) => tracing::warn!(path = %self.path.display(), "skipped a key that is not UTF-8"),
                },
                _ => tracing::warn!(path = %self.path.display(), "skipped a key that is not TEXT"),
            }
        }
        Ok(keys)
    }

    /// Deletes every readable entry expired at `now` (`expires_at <= now`). The expired rows
    /// are read (and their tokens checked) outside the write lock; each is then deleted only if
    /// it is still expired and holds the same tokens, so a put meanwhile is never undone.
    /// Unreadable rows are left in place and counted (see the crate docs, "Unreadable entries").
    pub(crate) fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = to_unix_seconds(now);
        let s = self.layout.statements();
        // Each expired readable row: its rowid and its two tokens as read.
        type Expired = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
        let mut doomed: Vec<Expired> = Vec::new();
        let mut skipped = 0;
        {
            let conn = self.conn()?;
            let mut stmt = conn
                .prepare_cached(s.expired)
                .map_err(self.err("delete expired entries"))?;
            let mut rows = stmt.query([now]).map_err(self.err("delete expired entries"))?;
            while let Some(row) = rows.next().map_err(self.err("delete expired entries"))? {
                if !self.row_is_readable(row) {
                    skipped += 1;
                    continue;
                }
                let value = |i: usize| match row.get_ref(i) {
                    Ok(ValueRef::Blob(b) | ValueRef::Text(b)) => Some(b.to_vec()),
                    _ => None,
                };
                let rowid: i64 = row
                    .get(self.layout.rowid_column())
                    .map_err(self.err("delete expired entries"))?;
                doomed.push((rowid, value(2), value(3)));
            }
        }
        self.note_unreadable_skipped(skipped);
        if doomed.is_empty() {
            return Ok(0);
        }
        self.write("delete expired entries", |tx| {
            let mut stmt = tx
                .prepare_cached(s.delete_expired_rowid)
                .map_err(self.err("delete expired entries"))?;
            let mut deleted = 0;
            for (rowid, username, password) in &doomed {
                deleted += stmt
                    .execute(rusqlite::params![rowid, now, username, password])
                    .map_err(self.err("delete expired entries"))?;
            }
            Ok(deleted)
        })
    }

    /// Writes pending hits and closes every connection (once the operations under way end).
    /// Later operations fail with [`TierError::Closed`]. Closing twice does nothing.
    pub(crate) fn close(&self) -> Result<(), TierError> {
        let open = self.pool.read().unwrap_or_else(PoisonError::into_inner).is_some();
        let flushed = if open { self.flush_touches() } else { Ok(()) };
        let pool = self.pool.write().unwrap_or_else(PoisonError::into_inner).take();
        drop(pool);
        self.drop_spare();
        self.checkpointer.stop();
        flushed
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(path = %self.path.display(), error = %e, "closing the cache database failed");
        }
    }
}

/// Implements [`CacheTier`] and the shared inherent methods (`evictions`, `flush`, `close`) for
/// a SQLite tier by delegating to its `store` field, every result passing through the store's
/// [`TierHealth`](crate::TierHealth) (the two tiers differ only in their level and their extra
/// methods).
macro_rules! impl_cache_tier_via_store {
    ($ty:ty, $tier:expr) => {
        impl $ty {
            /// Entries this tier evicted to stay within `max_entries`, since it opened.
            pub fn evictions(&self) -> u64 {
                self.store.evictions()
            }

            /// Writes the get hits noted for LRU/LFU so far (also done by itself, see
            /// [`crate::sqlite`]).
            pub fn flush(&self) -> Result<(), TierError> {
                self.store.health.observe(self.store.flush_touches())
            }

            /// Checkpoints the background thread has completed (tests).
            #[cfg(test)]
            pub(crate) fn background_checkpoints(&self) -> u64 {
                self.store.checkpointer.completed()
            }

            /// Whether the checkpoint thread is running (tests).
            #[cfg(test)]
            pub(crate) fn checkpoint_thread_running(&self) -> bool {
                self.store.checkpointer.running()
            }

            /// Writes pending hits and closes the database's connections. Later operations fail with
            /// [`TierError::Closed`]; closing again does nothing. Dropping the tier closes it too.
            pub fn close(&self) -> Result<(), TierError> {
                self.store.close()
            }
        }

        impl CacheTier for $ty {
            fn tier_type(&self) -> CacheTierType {
                $tier
            }

            fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
                self.store.health.observe(self.store.get(key))
            }

            fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
                self.store.health.observe(self.store.peek(key))
            }

            fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
                self.store.health.observe(self.store.put(entry))
            }

            /// The check, `still_below` and the write in one write transaction.
            fn put_if_absent_with(
                &self,
                entry: &CacheEntry,
                still_below: &mut dyn FnMut() -> bool,
            ) -> Result<bool, TierError> {
                self.store
                    .health
                    .observe(self.store.put_if_absent_with(entry, still_below))
            }

            fn delete(&self, key: &str) -> Result<bool, TierError> {
                self.store.health.observe(self.store.delete(key))
            }

            fn clear(&self) -> Result<usize, TierError> {
                self.store.health.observe(self.store.clear())
            }

            fn size(&self) -> Result<usize, TierError> {
                self.store.health.observe(self.store.size())
            }

            fn keys(&self) -> Result<Vec<String>, TierError> {
                self.store.health.observe(self.store.keys())
            }

            fn contains(&self, key: &str) -> Result<bool, TierError> {
                self.store.health.observe(self.store.contains(key))
            }

            fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
                self.store.health.observe(self.store.cleanup_expired(now))
            }

            fn health(&self) -> &TierHealth {
                &self.store.health
            }

            fn evictions(&self) -> u64 {
                self.store.evictions()
            }

            fn unreadable_skipped(&self) -> u64 {
                self.store.unreadable_skipped()
            }

            fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
                self.store.health.observe(self.store.credential_sample(limit))
            }

            /// Every row is read and its tokens checked in one write transaction.
            fn remove_unreadable(&self) -> Result<usize, TierError> {
                self.store.health.observe(self.store.remove_unreadable())
            }

            fn flush(&self) -> Result<(), TierError> {
                self.store.health.observe(self.store.flush_touches())
            }

            fn close(&self) -> Result<(), TierError> {
                self.store.close()
            }

            /// One transaction of `UPDATE`s of the three use columns.
            fn record_accesses(&self, records: &[pw_cache_model::AccessRecord]) -> Result<usize, TierError> {
                self.store.health.observe(self.store.record_accesses(records))
            }

            /// L3 reads the eight columns alone (no credential is decrypted).
            fn health_detail(&self, key: &str) -> Result<Option<pw_cache_model::HealthDetail>, TierError> {
                self.store.health.observe(self.store.health_detail(key))
            }

            /// L3's table has the health-check columns; L2's (proxywhirl's `l2_cache`) has not.
            fn keeps_health_detail(&self) -> bool {
                matches!($tier, CacheTierType::L3)
            }

            /// A write transaction that changes nothing (see [`crate::sqlite`]).
            fn probe(&self) -> Result<(), TierError> {
                self.store.health.observe(self.store.probe())
            }
        }
    };
}
pub(crate) use impl_cache_tier_via_store;

#[cfg(test)]
mod tests {
    //! The mechanics both SQLite tiers share, run on each: eviction policies and the bound, hit
    //! recording, expiry, row decoding, damaged and unusable databases, closing. Compatibility
    //! with proxywhirl's files, JSONL migration, health history and several processes are in
    //! the integration suite (`tests/compat_sqlite_l2.rs`, `tests/compat_sqlite_l3.rs`,
    //! `tests/migrate_jsonl.rs`, `tests/health_history.rs`, `tests/sqlite_processes.rs`).

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    use pw_cache_crypto::FernetKey;
    use time::macros::datetime;

    use super::*;
    use crate::tier::FAILURE_THRESHOLD;
    use crate::{CacheTier, SqliteL2Tier, SqliteL3Tier};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        L2,
        L3,
    }

    const KINDS: [Kind; 2] = [Kind::L2, Kind::L3];

    fn ring() -> Arc<KeyRing> {
        Arc::new(KeyRing::new(FernetKey::generate(), []))
    }

    fn db_path(kind: Kind, dir: &Path) -> PathBuf {
        match kind {
            Kind::L2 => dir.join(crate::sqlite_l2::DB_FILE_NAME),
            Kind::L3 => dir.join("db").join("proxywhirl.db"),
        }
    }

    fn table(kind: Kind) -> &'static str {
        match kind {
            Kind::L2 => "l2_cache",
            Kind::L3 => "cache_entries",
        }
    }

    fn try_open(kind: Kind, dir: &Path, config: &CacheTierConfig) -> Result<Box<dyn CacheTier>, TierError> {
        Ok(match kind {
            Kind::L2 => Box::new(SqliteL2Tier::open(dir, config, ring())?),
            Kind::L3 => Box::new(SqliteL3Tier::open(db_path(kind, dir), config, ring())?),
        })
    }

    fn open_error(kind: Kind, dir: &Path, config: &CacheTierConfig) -> TierError {
        match try_open(kind, dir, config) {
            Ok(_) => panic!("{kind:?} opened {}", dir.display()),
            Err(e) => e,
        }
    }

    fn open(kind: Kind, dir: &Path, config: &CacheTierConfig) -> Box<dyn CacheTier> {
        try_open(kind, dir, config).unwrap()
    }

    fn raw(kind: Kind, dir: &Path) -> Connection {
        Connection::open(db_path(kind, dir)).unwrap()
    }

    const T0: OffsetDateTime = datetime!(2020-01-01 00:00 UTC);

    /// Entry `k{i:03}`, fetched and last used `i` seconds after [`T0`], valid for a year.
    fn entry(i: i64) -> CacheEntry {
        CacheEntry::new_at(
            format!("http://10.0.0.{i}:8080"),
            "fetched",
            365 * 86_400,
            T0 + time::Duration::seconds(i),
        )
        .unwrap()
        .with_key(format!("k{i:03}"))
    }

    fn sorted_keys(tier: &dyn CacheTier) -> Vec<String> {
        let mut keys = tier.keys().unwrap();
        keys.sort();
        keys
    }

    fn key_list(range: std::ops::Range<i64>) -> Vec<String> {
        range.map(|i| format!("k{i:03}")).collect()
    }

    #[test]
    fn fifty_puts_into_ten_leave_ten_under_every_policy() {
        // proxywhirl's SQLite tiers ignore max_entries: the same 50 puts leave 50 there.
        for kind in KINDS {
            for policy in [EvictionPolicy::Lru, EvictionPolicy::Lfu, EvictionPolicy::Fifo] {
                let dir = tempfile::tempdir().unwrap();
                let tier = open(kind, dir.path(), &CacheTierConfig::bounded(10).with_policy(policy));
                for i in 0..50 {
                    tier.put(&entry(i)).unwrap();
                    assert!(tier.size().unwrap() <= 10, "{kind:?} {policy:?} after {i}");
                }
                // Older use, fewer uses (all 0, then older use) and first in all pick the oldest.
                assert_eq!(sorted_keys(&*tier), key_list(40..50), "{kind:?} {policy:?}");
            }
        }
    }

    #[test]
    fn lru_counts_get_hits() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(4));
            for i in 0..4 {
                tier.put(&entry(i)).unwrap();
            }
            assert!(tier.get("k000").unwrap().is_some());
            tier.put(&entry(4)).unwrap();
            assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k004"], "{kind:?}");
        }
    }

    #[test]
    fn peek_is_not_a_hit() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(4));
            for i in 0..4 {
                tier.put(&entry(i)).unwrap();
            }
            assert_eq!(tier.peek("k000").unwrap().unwrap().key, "k000");
            tier.put(&entry(4)).unwrap();
            // k000 was only peeked at: still the least recently used.
            assert_eq!(sorted_keys(&*tier), key_list(1..5), "{kind:?}");
        }
    }

    #[test]
    fn probe_writes_and_changes_nothing() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            tier.put(&entry(1)).unwrap();
            let version = |c: &Connection| -> u32 { c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap() };
            let before = version(&raw(kind, dir.path()));
            tier.probe().unwrap();
            assert_eq!(version(&raw(kind, dir.path())), before, "{kind:?}");
            assert_eq!(sorted_keys(&*tier), ["k001"]);
            // A closed tier fails its probe (a tier failure, counted).
            tier.close().unwrap();
            let err = tier.probe().unwrap_err();
            assert!(err.is_tier_failure(), "{kind:?}: {err}");
            assert_eq!(tier.health().consecutive_failures(), 1);
        }
    }

    #[test]
    fn lfu_evicts_the_least_used_then_the_least_recent() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let config = CacheTierConfig::bounded(4).with_policy(EvictionPolicy::Lfu);
            let tier = open(kind, dir.path(), &config);
            for (i, count) in [(0, 5), (1, 0), (2, 3), (3, 0)] {
                let mut e = entry(i);
                e.access_count = count;
                tier.put(&e).unwrap();
            }
            // k001 and k003 have no use; k001's is older.
            tier.put(&entry(4)).unwrap();
            assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k004"], "{kind:?}");
            // Two hits lift k003 above k004 (0 uses).
            tier.get("k003").unwrap();
            tier.get("k003").unwrap();
            tier.put(&entry(5)).unwrap();
            assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k005"], "{kind:?}");
        }
    }

    #[test]
    fn fifo_evicts_in_insertion_order_and_an_update_keeps_its_place() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let config = CacheTierConfig::bounded(3).with_policy(EvictionPolicy::Fifo);
            let tier = open(kind, dir.path(), &config);
            for i in 0..3 {
                tier.put(&entry(i)).unwrap();
            }
            let mut updated = entry(0);
            updated.last_accessed = T0 + time::Duration::days(30);
            updated.access_count = 9;
            tier.put(&updated).unwrap();
            tier.get("k000").unwrap();
            tier.put(&entry(3)).unwrap();
            assert_eq!(sorted_keys(&*tier), ["k001", "k002", "k003"], "{kind:?}");
        }
    }

    #[test]
    fn a_put_at_the_bound_evicts_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::bounded(128), ring()).unwrap();
        for i in 0..128 {
            tier.put(&entry(i)).unwrap();
        }
        assert_eq!((tier.size().unwrap(), tier.evictions()), (128, 0));
        tier.put(&entry(128)).unwrap();
        // One for the new entry, 128 / 64 more.
        assert_eq!((tier.size().unwrap(), tier.evictions()), (126, 3));
        assert_eq!(sorted_keys(&tier)[..2], ["k003", "k004"]);
        // An update of a held key needs no room.
        tier.put(&entry(128)).unwrap();
        assert_eq!(tier.evictions(), 3);
    }

    #[test]
    fn hits_are_written_in_batches_on_flush_and_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let tier =
            SqliteL3Tier::open(db_path(Kind::L3, dir.path()), &CacheTierConfig::bounded(10_000), ring()).unwrap();
        let stored = |key: &str| -> (f64, i64) {
            raw(Kind::L3, dir.path())
                .query_row(
                    "SELECT last_accessed, access_count FROM cache_entries WHERE key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        let first = entry(0);
        tier.put(&first).unwrap();
        let before = stored("k000");
        assert_eq!(before, (to_unix_seconds(first.last_accessed), 0));
        // A hit returns the entry as stored and is noted, not written yet.
        assert_eq!(tier.get("k000").unwrap().unwrap(), first);
        assert_eq!(stored("k000"), before);
        tier.flush().unwrap();
        let (last, count) = stored("k000");
        assert!(last > before.0, "last_accessed moved to now");
        assert_eq!(count, 1);

        // TOUCH_BATCH hits of distinct keys write themselves.
        for i in 1..=TOUCH_BATCH as i64 {
            tier.put(&entry(i)).unwrap();
        }
        for i in 1..=TOUCH_BATCH as i64 {
            tier.get(&format!("k{i:03}")).unwrap().unwrap();
        }
        assert_eq!(stored("k001").1, 1);
        assert_eq!(stored(&format!("k{TOUCH_BATCH:03}")).1, 1);
        // So do TOUCH_BATCH hits of one key.
        for _ in 0..TOUCH_BATCH {
            tier.get("k002").unwrap().unwrap();
        }
        assert_eq!(stored("k002").1, 1 + TOUCH_BATCH as i64);

        // Pending hits are written by close.
        tier.get("k001").unwrap().unwrap();
        tier.close().unwrap();
        assert_eq!(stored("k001").1, 2);
    }

    #[test]
    fn a_put_drops_the_pending_hits_of_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheTierConfig::bounded(100).with_policy(EvictionPolicy::Lfu);
        let tier = SqliteL2Tier::open(dir.path(), &config, ring()).unwrap();
        tier.put(&entry(0)).unwrap();
        for _ in 0..5 {
            tier.get("k000").unwrap().unwrap();
        }
        let mut seen = entry(0);
        seen.access_count = 5;
        tier.put(&seen).unwrap();
        tier.flush().unwrap();
        assert_eq!(tier.get("k000").unwrap().unwrap().access_count, 5);
    }

    #[test]
    fn unbounded_tiers_record_no_hits() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            tier.put(&entry(0)).unwrap();
            tier.get("k000").unwrap().unwrap();
            drop(tier);
            let count: i64 = raw(kind, dir.path())
                .query_row(&format!("SELECT access_count FROM {}", table(kind)), [], |r| r.get(0))
                .unwrap();
            assert_eq!(count, 0, "{kind:?}");
        }
    }

    #[test]
    fn cleanup_uses_the_shared_expiry_boundary() {
        let now = datetime!(2026-11-20 23:00:00.123456 UTC);
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            for (i, expires) in [
                (0, now - time::Duration::microseconds(1)),
                (1, now),
                (2, now + time::Duration::microseconds(1)),
            ] {
                let mut e = entry(i);
                e.expires_at = expires;
                tier.put(&e).unwrap();
            }
            assert_eq!(tier.cleanup_expired(now).unwrap(), 2, "{kind:?}");
            assert_eq!(sorted_keys(&*tier), ["k002"], "{kind:?}");
        }
    }

    /// An entry with every field set to something not default, credentials included (an
    /// empty one too), timestamps in other offsets than UTC.
    fn full_entry() -> CacheEntry {
        let at = datetime!(2026-11-20 18:00:00.654321 -05:00);
        let mut e = CacheEntry::new_at("http://[2001:db8::1]:3128", "источник", 7200, at)
            .unwrap()
            .with_credentials(Some(Secret::new("")), Some(Secret::new("pässwörd")));
        e.last_accessed = datetime!(2026-11-21 05:30:00.000001 +05:30);
        e.access_count = 17;
        e.health_status = HealthStatus::Degraded;
        e.failure_count = 2;
        e.evicted_from_l1 = true;
        e.last_health_check = Some(datetime!(2026-11-20 23:10:00.5 UTC));
        e.consecutive_health_failures = 3;
        e.consecutive_health_successes = 4;
        e.recovery_attempt = 5;
        e.next_check_time = Some(datetime!(2026-11-20 23:11:00 UTC));
        e.last_health_error = Some("timeout after 5.0s".to_owned());
        e.total_health_checks = 6;
        e.total_health_check_failures = 7;
        e
    }

    #[test]
    fn every_field_round_trips() {
        let e = full_entry();
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            tier.put(&e).unwrap();
            let back = tier.get(&e.key).unwrap().unwrap();
            let layout = match kind {
                Kind::L2 => Layout::L2,
                Kind::L3 => Layout::L3,
            };
            assert_eq!(back, layout.as_stored(&e), "{kind:?}");
            assert_eq!(back.fetch_time.offset(), time::UtcOffset::UTC, "read back in UTC");
            assert_eq!(back.password.as_ref().unwrap().expose_secret(), "pässwörd");
            // The empty username is stored, encrypted, not dropped.
            assert_eq!(back.username.as_ref().unwrap().expose_secret(), "");
            let blob: Vec<u8> = raw(kind, dir.path())
                .query_row(&format!("SELECT username_encrypted FROM {}", table(kind)), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(blob.starts_with(b"gAAAAA"), "a Fernet token");
            if kind == Kind::L2 {
                assert_eq!(back.total_health_checks, 0, "L2 has no health columns");
            }
        }
    }

    #[test]
    fn damaged_rows_are_corrupt_entries_not_tier_failures() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            for i in 0..7 {
                tier.put(&entry(i)).unwrap();
            }
            let t = table(kind);
            let conn = raw(kind, dir.path());
            for (key, set, column) in [
                ("k000", "fetch_time = 'yesterday'", "fetch_time"),
                ("k001", "access_count = -1", "access_count"),
                ("k002", "health_status = 'sick'", "health_status"),
                ("k003", "expires_at = 1e20", "expires_at"),
                ("k004", "source = X'FF'", "source"),
                ("k005", "access_count = NULL", "access_count"),
            ] {
                conn.execute(&format!("UPDATE {t} SET {set} WHERE key = ?1"), [key])
                    .unwrap();
                let err = tier.get(key).unwrap_err();
                assert!(matches!(err, TierError::Corrupt { .. }), "{kind:?} {key}: {err}");
                assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
                assert!(err.to_string().contains(column), "{err}");
            }
            // A token no key opens, and bytes that are no token.
            for (key, blob) in [
                ("k000", ring().encrypt(&Secret::new("x")).into_bytes()),
                ("k001", vec![0, 1, 2, 3]),
            ] {
                conn.execute(
                    &format!(
                        "UPDATE {t} SET fetch_time = 1.5, access_count = 0, password_encrypted = ?2 WHERE key = ?1"
                    ),
                    rusqlite::params![key, blob],
                )
                .unwrap();
                let err = tier.get(key).unwrap_err();
                assert!(matches!(err, TierError::Crypto { .. }), "{kind:?} {key}: {err}");
                assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
            }
            assert_eq!(tier.health().consecutive_failures(), 0);
            assert_eq!(tier.get("k006").unwrap().unwrap(), entry(6), "{kind:?}");
            assert_eq!(tier.size().unwrap(), 7, "nothing stored is lost");
        }
    }

    #[test]
    fn values_sqlite_cannot_hold_and_empty_keys_are_invalid_entries() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(5));
            let mut e = entry(0);
            e.access_count = u64::MAX;
            let err = tier.put(&e).unwrap_err();
            assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
            assert!(err.to_string().contains("access_count"), "{err}");
            let err = tier.put(&entry(1).with_key("")).unwrap_err();
            assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
            assert!(!err.is_tier_failure());
            assert_eq!(tier.size().unwrap(), 0);
        }
    }

    /// The most pages the log of the database at `path` has held: SQLite never shrinks the
    /// `-wal` file while the database is open (a 32-byte header, then frames of a 24-byte
    /// header and a 4 KiB page).
    fn most_wal_frames(path: &Path) -> u64 {
        let wal = std::fs::metadata(format!("{}-wal", path.display())).unwrap().len();
        wal.saturating_sub(32) / (24 + 4096)
    }

    #[test]
    fn a_long_log_is_checkpointed_by_the_thread_and_close_stops_it() {
        const PUTS: i64 = 3000;
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let path = db_path(kind, dir.path());
            let (l2, l3);
            let (tier, completed, running): (&dyn CacheTier, &dyn Fn() -> u64, &dyn Fn() -> bool) = match kind {
                Kind::L2 => {
                    l2 = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), ring()).unwrap();
                    (&l2, &|| l2.background_checkpoints(), &|| l2.checkpoint_thread_running())
                }
                Kind::L3 => {
                    l3 = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), ring()).unwrap();
                    (&l3, &|| l3.background_checkpoints(), &|| l3.checkpoint_thread_running())
                }
            };
            assert!(!running(), "{kind:?}: no thread before a long log");
            for i in 0..PUTS {
                tier.put(&entry(i)).unwrap();
            }
            let most = most_wal_frames(&path);
            // ~6 pages a put: without checkpoints the log would hold ~18,000 pages. Past the
            // backstop, the writer's own checkpoint is busy while the thread's runs: the log
            // grows by what is committed meanwhile.
            assert!(
                most <= (checkpoint::BACKSTOP_FRAMES + checkpoint::CHECKPOINT_FRAMES) as u64,
                "{kind:?}: the log reached {most} pages"
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while completed() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{kind:?}: no background checkpoint"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(running(), "{kind:?}");
            tier.close().unwrap();
            assert!(!running(), "{kind:?}: close stops the thread");
            let again = open(kind, dir.path(), &CacheTierConfig::unbounded());
            assert_eq!(again.size().unwrap(), PUTS as usize, "{kind:?}");
            assert_eq!(again.get("k2999").unwrap().unwrap(), entry(2999), "{kind:?}");
        }
    }

    #[test]
    fn close_twice_then_operations_fail_typed() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier: Box<dyn CacheTier> = match kind {
                Kind::L2 => {
                    let t = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), ring()).unwrap();
                    t.put(&entry(0)).unwrap();
                    t.close().unwrap();
                    t.close().unwrap();
                    Box::new(t)
                }
                Kind::L3 => {
                    let t =
                        SqliteL3Tier::open(db_path(kind, dir.path()), &CacheTierConfig::unbounded(), ring()).unwrap();
                    t.put(&entry(0)).unwrap();
                    t.close().unwrap();
                    t.close().unwrap();
                    Box::new(t)
                }
            };
            let err = tier.get("k000").unwrap_err();
            assert!(matches!(err, TierError::Closed { .. }), "{err}");
            assert!(err.is_tier_failure());
            // Closed means closed: the file is complete and another opener sees the entry.
            let again = open(kind, dir.path(), &CacheTierConfig::unbounded());
            assert_eq!(again.get("k000").unwrap().unwrap(), entry(0));
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_typed_failure() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let path = db_path(kind, dir.path());
            fs_create_parent(&path);
            let garbage: Vec<u8> = (0..8192u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            std::fs::write(&path, &garbage).unwrap();
            let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
            assert!(matches!(err, TierError::Sqlite { .. }), "{kind:?}: {err}");
            assert!(err.is_tier_failure());
            assert!(err.to_string().contains(&path.display().to_string()), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file is left as it was");
        }
    }

    #[test]
    fn a_truncated_database_is_a_typed_failure() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            {
                let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
                for i in 0..300 {
                    tier.put(&entry(i)).unwrap();
                }
            }
            let path = db_path(kind, dir.path());
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(3 * 4096).unwrap();
            drop(file);
            let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
            assert!(matches!(err, TierError::Sqlite { .. }), "{kind:?}: {err}");
            assert!(err.is_tier_failure(), "{err}");
        }
    }

    #[test]
    fn a_database_broken_while_open_disables_the_tier_until_it_works_again() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            tier.put(&entry(0)).unwrap();
            let conn = raw(kind, dir.path());
            conn.execute_batch(&format!("ALTER TABLE {0} RENAME TO {0}_away", table(kind)))
                .unwrap();
            for _ in 0..FAILURE_THRESHOLD {
                let err = tier.get("k000").unwrap_err();
                assert!(
                    matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
                    "{err}"
                );
            }
            assert!(tier.health().is_disabled(), "{kind:?}");
            conn.execute_batch(&format!("ALTER TABLE {0}_away RENAME TO {0}", table(kind)))
                .unwrap();
            assert_eq!(tier.get("k000").unwrap().unwrap(), entry(0));
            assert!(!tier.health().is_disabled(), "a success resets");
        }
    }

    #[test]
    fn a_newer_schema_version_or_missing_columns_are_refused() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            drop(open(kind, dir.path(), &CacheTierConfig::unbounded()));
            raw(kind, dir.path()).pragma_update(None, "user_version", 2).unwrap();
            let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
            assert!(
                matches!(err, TierError::Schema { .. }) && err.is_tier_failure(),
                "{err}"
            );
            assert!(err.to_string().contains("schema version 2"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        Connection::open(dir.path().join(crate::sqlite_l2::DB_FILE_NAME))
            .unwrap()
            .execute_batch("CREATE TABLE l2_cache (key TEXT PRIMARY KEY, proxy_url TEXT)")
            .unwrap();
        let err = open_error(Kind::L2, dir.path(), &CacheTierConfig::unbounded());
        assert!(matches!(err, TierError::Schema { .. }), "{err}");
        assert!(err.to_string().contains("no column username_encrypted"), "{err}");
    }

    #[test]
    fn threads_share_the_pool() {
        for kind in KINDS {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(10_000));
            std::thread::scope(|s| {
                for t in 0..8i64 {
                    let tier = &tier;
                    s.spawn(move || {
                        for i in (t * 100)..(t * 100 + 100) {
                            let e = entry(i);
                            tier.put(&e).unwrap();
                            assert_eq!(tier.get(&e.key).unwrap(), Some(e));
                        }
                    });
                }
            });
            assert_eq!(tier.size().unwrap(), 800, "{kind:?}");
        }
    }

    fn fs_create_parent(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    }

    /// Set in the child process of [`read_only_places_are_typed_failures`] (run as `nobody`
    /// when the tests run as root, who ignores permissions).
    const READ_ONLY_CHILD: &str = "PW_CACHE_TEST_SQLITE_READ_ONLY_CHILD";

    #[test]
    fn read_only_places_are_typed_failures() {
        if let Ok(dir) = std::env::var(READ_ONLY_CHILD) {
            return read_only_checks(Path::new(&dir));
        }
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        // `ro/`: a read-only directory holding one database of each tier.
        // `rw/`: a writable directory holding read-only databases.
        for sub in ["ro", "rw"] {
            for kind in KINDS {
                let tier = open(kind, &base.join(sub), &CacheTierConfig::unbounded());
                tier.put(&entry(0)).unwrap();
            }
        }
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        for kind in KINDS {
            mode(&db_path(kind, &base.join("rw")), 0o444);
        }
        mode(&base.join("rw"), 0o777);
        mode(&base.join("rw/db"), 0o777);
        mode(&base.join("ro/db"), 0o555);
        mode(&base.join("ro"), 0o555);
        mode(base, 0o755);
        let me = std::fs::metadata(base).unwrap().uid();
        if me != 0 {
            return read_only_checks(base);
        }
        // Run a copy of this test binary from the world-readable temp dir: the checkout it was
        // built in may sit under a directory `nobody` cannot enter.
        let exe = base.join("test-binary");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        mode(&exe, 0o755);
        let child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "sqlite::tests::read_only_places_are_typed_failures",
                "--test-threads=1",
            ])
            .env(READ_ONLY_CHILD, base)
            .uid(65_534)
            .gid(65_534)
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "the unprivileged child failed:\n{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
    }

    fn read_only_checks(base: &Path) {
        let config = CacheTierConfig::unbounded();
        // A new database cannot be made in a read-only directory.
        let err = open_error(Kind::L2, &base.join("ro/new"), &config);
        assert!(err.is_tier_failure(), "{err}");
        let err = open_error(Kind::L3, &base.join("ro/new"), &config);
        assert!(err.is_tier_failure(), "{err}");
        // A WAL database in a read-only directory cannot even be read (no -shm file).
        for kind in KINDS {
            let err = open_error(kind, &base.join("ro"), &config);
            assert!(
                matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
                "{kind:?}: {err}"
            );
        }
        // A read-only database file: reads work, every write fails until the tier is disabled.
        for kind in KINDS {
            let tier = open(kind, &base.join("rw"), &config);
            assert_eq!(tier.get("k000").unwrap().unwrap(), entry(0));
            for i in 1..=i64::from(FAILURE_THRESHOLD) {
                let err = tier.put(&entry(i)).unwrap_err();
                assert!(
                    matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
                    "{kind:?}: {err}"
                );
            }
            assert!(tier.health().is_disabled(), "{kind:?}");
            assert_eq!(tier.size().unwrap(), 1, "nothing stored is lost");
        }
    }
}
