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
//! A put writes what proxywhirl writes: timestamps as REAL Unix seconds
//! ([`pw_cache_model::timestamp::to_unix_seconds`]), counts and the flag as INTEGERs, text as
//! TEXT, a credential as a BLOB of its Fernet token's bytes, NULL when there is none; an empty
//! string is a credential like any other and is stored encrypted (proxywhirl stores NULL for it).
//!
//! A get reads every value proxywhirl 0.3.3's reader reads, to the value it reads. proxywhirl
//! maps the row by position, converts the times with `datetime.fromtimestamp(x, tz=utc)` and
//! the flag with Python's `bool()`, then validates the entry with pydantic 2 in lax mode (the
//! string rules below are pydantic-core 2.50.5's, the reference environment's; proxywhirl asks
//! for any pydantic 2, and older ones differ in details: some read `'5.'` as 5, some no
//! surrounding whitespace). Per column kind, what is read, and what is unreadable —
//! [`TierError::Corrupt`] naming the column, an entry no operation of the tier removes (see the
//! crate docs, "Unreadable entries"):
//!
//! | column | read | unreadable |
//! |---|---|---|
//! | text: `key`, `proxy_url`, `source`; `last_health_error` | TEXT; a BLOB of UTF-8 (as its text); `last_health_error` NULL (none) | NULL elsewhere; INTEGER, REAL; TEXT or BLOB that is not UTF-8 |
//! | `health_status` | exactly `unknown`, `healthy`, `degraded`, `unhealthy` or `dead`, as TEXT or BLOB | any other value (`HEALTHY`, `' healthy'`, NULL) |
//! | times: `fetch_time`, `last_accessed`, `expires_at`; `last_health_check`, `next_check_time` | a REAL or INTEGER number of seconds within years 1..=9999, rounded to the microsecond as Python does ([`pw_cache_model::timestamp::from_unix_seconds`], in UTC); the last two NULL (none) | TEXT, BLOB; NULL elsewhere; out of those years |
//! | counts: `access_count`, `ttl_seconds`, `failure_count`, L3's five health counts | an INTEGER; a REAL without a fraction strictly between -2^63 and 2^63 (`5.0`); an integer's text, as TEXT or a BLOB of UTF-8: surrounding whitespace, one `+` or `-`, leading zeros, `_` between digits, a fraction of zeros, at most 4300 digits (`' +1_000.00 '` is 1000; pydantic's quirks too: `'0-5'` is -5) | NULL; `5.5`, ±inf, a REAL beyond ±2^63; text that is no integer (`'5.'`, `'1e3'`, `'0x10'`, `''`) |
//! | `evicted_from_l1` | any value, as Python's `bool()`: NULL, 0, 0.0, `''` and an empty BLOB are false, everything else true (`'0'`, `'no'` and `'false'` included) | TEXT that is not UTF-8 |
//! | credentials | the bytes of a BLOB (or TEXT) token; NULL, an empty value, 0 and 0.0 are no credential | any other INTEGER or REAL; a token no key of the ring opens ([`TierError::Crypto`]) |
//!
//! A value proxywhirl reads that our fields cannot hold is read as the nearest one, with a
//! warning naming the key and the column: a negative `access_count` (proxywhirl's model has no
//! lower bound for it) as 0, a count above `u64::MAX` as `u64::MAX`. The other counts have
//! `ge=0` in proxywhirl's model: a negative one is unreadable there, and here.
//!
//! More lenient than proxywhirl where that harms nothing: L3's NULL `evicted_from_l1` is false
//! (proxywhirl's L2 reads NULL false, its L3 fails); L3's `created_at` and `updated_at` are
//! never read (proxywhirl fails a row whose `created_at` is not a time); the columns are read by
//! name, not by position. The common storage classes (INTEGER counts, REAL times, TEXT text,
//! BLOB tokens) are read first and cost what they did; the others are read on a slower path.
//!
//! # Column types
//!
//! When a tier opens (and when a probe re-creates its schema), each column's declared type
//! (`pragma_table_info`) is checked, for proxywhirl's tables can exist with other types. Its
//! affinity — SQLite's rules: a type containing `INT` is INTEGER; `CHAR`, `CLOB` or `TEXT`,
//! TEXT; `BLOB` or no type, BLOB (no conversion); `REAL`, `FLOA` or `DOUB`, REAL; any other,
//! NUMERIC — decides what SQLite makes of the values written. A column is accepted when what
//! this tier writes reads back as written and every statement compares it correctly; else the
//! tier refuses to open with [`TierError::Schema`], whose reason names the table, the column,
//! its declared type and what is expected, leaving the tables as they were:
//!
//! | column | accepted affinities | refused, because |
//! |---|---|---|
//! | `key`, the history's `proxy_key`; text | TEXT, BLOB | INTEGER, REAL, NUMERIC: a text that reads as a number (`'123'`) is stored as a number, which no reader reads back as text (and `key = ?` would find `'0123'` under `'123'`) |
//! | times; `response_time_ms` | INTEGER, REAL, NUMERIC, BLOB (an integral REAL stored as an INTEGER reads the same) | TEXT: a REAL is stored as text of 15 digits (microseconds lost) that no reader reads back, and `expires_at <= ?`, `ORDER BY last_accessed`, `max(last_accessed, ?)` compare text |
//! | counts | all: TEXT stores `'5'`, read as 5, and `access_count + ?` computes in numbers | `access_count` TEXT on a bounded LFU tier: `ORDER BY access_count` sorts text (`'10'` before `'9'`); the same file opens unbounded or under LRU or FIFO |
//! | `evicted_from_l1` | INTEGER, REAL, NUMERIC, BLOB | TEXT: a false flag is stored as `'0'`, which Python's `bool()` (and so this reader) reads true, and `max(evicted_from_l1, ?)` keeps `'0'` over 1 |
//! | `health_status`, the history's `status`, credentials, `created_at`, `updated_at` | all: the five words never read as numbers; BLOBs are never converted; the two times are only written | — |
//! | the history's `id` | `INTEGER PRIMARY KEY` only | anything else is not the rowid, which numbers a recorded check |
//!
//! A REAL count holds integers exactly up to 2^53. A STRICT table refuses what it cannot
//! convert instead of converting it: there each column must be declared with proxywhirl's type
//! or `ANY`.
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
use rusqlite::{Connection, OpenFlags, Row, ToSql, Transaction, TransactionBehavior};

use self::checkpoint::Checkpointer;
use crate::error::TierError;
use crate::jsonl::EVICTION_BATCH_DIVISOR;
use crate::tier::{FailureMark, TierHealth};
use crate::touches::{Touch, Touches};

pub mod checkpoint;
pub mod l2;
pub mod l3;

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

/// A column's SQLite type affinity, from its declared type (SQLite's rules, "Datatypes In
/// SQLite" §3.1): what SQLite converts a value into when it stores it in that column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// INTEGER (the declared type contains `INT`).
    Integer,
    /// TEXT (`CHAR`, `CLOB` or `TEXT`): numbers are stored as their text.
    Text,
    /// BLOB, also called no affinity (`BLOB`, or no declared type): nothing is converted.
    Blob,
    /// REAL (`REAL`, `FLOA` or `DOUB`): integers are stored as reals.
    Real,
    /// NUMERIC (anything else): text that reads as a number is stored as one.
    Numeric,
}

impl Affinity {
    /// The affinity of a column declared `declared`, by SQLite's rules in their order.
    pub(crate) fn of_declared(declared: &str) -> Self {
        let upper = declared.to_ascii_uppercase();
        let has = |part: &str| upper.contains(part);
        if has("INT") {
            Affinity::Integer
        } else if has("CHAR") || has("CLOB") || has("TEXT") {
            Affinity::Text
        } else if has("BLOB") || upper.trim().is_empty() {
            Affinity::Blob
        } else if has("REAL") || has("FLOA") || has("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    fn name(self) -> &'static str {
        match self {
            Affinity::Integer => "INTEGER",
            Affinity::Text => "TEXT",
            Affinity::Blob => "BLOB",
            Affinity::Real => "REAL",
            Affinity::Numeric => "NUMERIC",
        }
    }
}

/// What a column holds and how the tiers' statements use it: which declared types it may have
/// (the table in the module docs, "Column types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// A key looked up with `= ?` (`key`; the history's `proxy_key`).
    Key,
    /// Text read back (`proxy_url`, `source`, `last_health_error`, the history's texts).
    Text,
    /// A health status word.
    Status,
    /// A credential token (a BLOB or NULL).
    Token,
    /// A time read back, compared or ordered in SQL.
    Time,
    /// A time only written (`created_at`, `updated_at`: never read nor compared).
    WrittenTime,
    /// A REAL read back (`response_time_ms`).
    Real,
    /// A count read back (and added to, for `access_count`).
    Count,
    /// `access_count`: a count, ordered by the LFU eviction of a bounded tier.
    UseCount,
    /// A flag, read as Python's `bool()` and kept with `max(column, ?)`.
    Flag,
    /// `health_history.id`: the rowid.
    RowId,
}

impl ColumnKind {
    /// The type proxywhirl declares for such a column.
    fn proxywhirl_type(self) -> &'static str {
        match self {
            ColumnKind::Key | ColumnKind::Text | ColumnKind::Status => "TEXT",
            ColumnKind::Token => "BLOB",
            ColumnKind::Time | ColumnKind::WrittenTime | ColumnKind::Real => "REAL",
            ColumnKind::Count | ColumnKind::UseCount | ColumnKind::Flag | ColumnKind::RowId => "INTEGER",
        }
    }

    /// Why a column of this kind cannot have `affinity` (`None`: it can), when the tier
    /// orders rows by `access_count` or not.
    fn refusal(self, affinity: Affinity, orders_by_use: bool) -> Option<&'static str> {
        use Affinity as A;
        match (self, affinity) {
            (ColumnKind::Key, A::Integer | A::Real | A::Numeric) => Some(
                "a key that reads as a number ('123') would be stored as a number, which no lookup by its \
                 text finds and no reader reads back",
            ),
            (ColumnKind::Text, A::Integer | A::Real | A::Numeric) => Some(
                "a text that reads as a number ('123') would be stored as a number, which neither this tier nor \
                 proxywhirl reads back as text",
            ),
            (ColumnKind::Time, A::Text) => Some(
                "times would be stored as text of 15 digits (the microseconds lost), which neither this tier nor \
                 proxywhirl reads back, and compared and ordered as text",
            ),
            (ColumnKind::Real, A::Text) => {
                Some("numbers would be stored as text, which neither this tier nor proxywhirl reads back as a REAL")
            }
            (ColumnKind::UseCount, A::Text) if orders_by_use => Some(
                "this tier evicts by LFU: ORDER BY access_count would sort the counts as text ('10' before '9'); \
                 open it with another policy, or unbounded",
            ),
            (ColumnKind::Flag, A::Text) => Some(
                "a false flag would be stored as '0', which reads true (Python's bool('0')), and \
                 max(evicted_from_l1, ?) would keep '0' over 1",
            ),
            _ => None,
        }
    }

    /// The affinities a column of this kind may have, for messages.
    fn accepted(self, orders_by_use: bool) -> &'static str {
        match self {
            ColumnKind::Key | ColumnKind::Text => "a type of TEXT or BLOB affinity",
            ColumnKind::Time | ColumnKind::Real | ColumnKind::Flag => {
                "a type of INTEGER, REAL, NUMERIC or BLOB affinity"
            }
            ColumnKind::UseCount if orders_by_use => "a type of INTEGER, REAL, NUMERIC or BLOB affinity",
            ColumnKind::RowId => "INTEGER PRIMARY KEY",
            _ => "any type",
        }
    }
}

/// A column of a table as `pragma_table_info` gives it.
struct DeclaredColumn {
    name: String,
    declared: String,
    /// Its place in the primary key (0: not in it).
    primary_key: i64,
}

/// The columns of `table`, in order (empty when there is no such table).
fn declared_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<DeclaredColumn>> {
    let mut stmt = conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1)")?;
    let columns = stmt.query_map([table], |row| {
        Ok(DeclaredColumn {
            name: row.get(0)?,
            declared: row.get(1)?,
            primary_key: row.get(2)?,
        })
    })?;
    columns.collect()
}

/// Whether `table` is a STRICT table.
fn is_strict(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1")?;
    let mut rows = stmt.query([table])?;
    Ok(match rows.next()? {
        Some(row) => row.get::<_, i64>(0)? != 0,
        None => false,
    })
}

/// Why the column `column`, of kind `kind`, cannot be used (`None`: it can).
fn column_refusal(column: &DeclaredColumn, kind: ColumnKind, strict: bool, orders_by_use: bool) -> Option<String> {
    let declared = column.declared.trim();
    let shown = if declared.is_empty() {
        "with no type".to_owned()
    } else {
        declared.to_owned()
    };
    if kind == ColumnKind::RowId {
        // Only `INTEGER PRIMARY KEY` makes the column the rowid, which numbers new rows.
        return (!(declared.eq_ignore_ascii_case("INTEGER") && column.primary_key == 1)).then(|| {
            format!(
                "column {} is declared {shown}{}; expected INTEGER PRIMARY KEY: only that makes it the rowid, which \
                 numbers the recorded checks",
                column.name,
                if column.primary_key == 1 { " PRIMARY KEY" } else { "" },
            )
        });
    }
    if strict {
        // A STRICT table refuses a value it cannot convert (a BLOB for TEXT, a fraction for
        // INTEGER, ...): only proxywhirl's own type, or ANY (no conversion), holds what is written.
        let fits = declared.eq_ignore_ascii_case(kind.proxywhirl_type()) || declared.eq_ignore_ascii_case("ANY");
        return (!fits).then(|| {
            format!(
                "column {} is declared {shown} in a STRICT table; expected {} or ANY: a STRICT table refuses the \
                 values it cannot convert",
                column.name,
                kind.proxywhirl_type(),
            )
        });
    }
    let affinity = Affinity::of_declared(declared);
    kind.refusal(affinity, orders_by_use).map(|why| {
        format!(
            "column {} is declared {shown} ({} affinity); expected {} (proxywhirl's) or {}: {why}",
            column.name,
            affinity.name(),
            kind.proxywhirl_type(),
            kind.accepted(orders_by_use),
        )
    })
}

/// Whether a tier with `config` orders rows by `access_count`: a bounded LFU tier evicts by it.
pub(crate) fn orders_by_use(config: &CacheTierConfig) -> bool {
    config.max_entries.is_some() && config.eviction_policy == EvictionPolicy::Lfu
}

/// Fails with [`TierError::Schema`] unless `table` has every column of `required`, each
/// declared with a type this tier can use (see the module docs, "Column types"):
/// `orders_by_use` when the tier orders rows by `access_count` (bounded LFU).
pub(crate) fn require_columns(
    conn: &Connection,
    path: &Path,
    table: &str,
    required: &[(&str, ColumnKind)],
    orders_by_use: bool,
) -> Result<(), TierError> {
    let schema_error = |reason: String| TierError::Schema {
        path: path.to_path_buf(),
        reason,
    };
    let have = declared_columns(conn, table).map_err(sql_error("read schema", path))?;
    if have.is_empty() {
        return Err(schema_error(format!("there is no table {table}")));
    }
    let missing: Vec<&str> = required
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !have.iter().any(|h| h.name == *name))
        .collect();
    if !missing.is_empty() {
        return Err(schema_error(format!(
            "table {table} has no column {}",
            missing.join(", ")
        )));
    }
    let strict = is_strict(conn, table).map_err(sql_error("read schema", path))?;
    let refused: Vec<String> = required
        .iter()
        .filter_map(|(name, kind)| {
            let column = have.iter().find(|h| h.name == *name)?;
            column_refusal(column, *kind, strict, orders_by_use)
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(schema_error(format!("table {table}: {}", refused.join("; "))))
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
    /// A health mark's two columns (?2 the new `failure_count`, ?3 the status).
    mark_failure: &'static str,
    health_detail: &'static str,
    /// Deletes one key if not written since ?2 (L3 only: `l2_cache` has no `updated_at`, and
    /// this is never prepared for it).
    delete_unchanged: &'static str,
    /// Deletes every row not written since ?1 (L3 only, as `delete_unchanged`).
    clear_unchanged: &'static str,
    /// Sets the two token columns of one key.
    rotate_tokens: &'static str,
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
            mark_failure: concat!(
                "UPDATE ",
                $table,
                " SET failure_count = ?2, health_status = ?3 WHERE key = ?1"
            ),
            health_detail: $detail,
            delete_unchanged: concat!(
                "DELETE FROM ",
                $table,
                " WHERE key = ?1 AND (updated_at IS NULL OR updated_at <= ?2)"
            ),
            clear_unchanged: concat!("DELETE FROM ", $table, " WHERE updated_at IS NULL OR updated_at <= ?1"),
            rotate_tokens: concat!(
                "UPDATE ",
                $table,
                " SET username_encrypted = ?2, password_encrypted = ?3 WHERE key = ?1"
            ),
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
        access_count: col.use_count(7, "access_count")?,
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

/// Typed reads of one row's values, each as proxywhirl 0.3.3 reads it (see the module docs,
/// "Rows"); a value it cannot read is [`TierError::Corrupt`], naming the column. The usual
/// storage class of each column is read first; the other readable ones only after.
pub(crate) struct Columns<'r, 'k> {
    /// The row.
    pub(crate) row: &'r Row<'r>,
    /// The entry's key, for errors.
    pub(crate) key: &'k str,
}

/// What a count column does with a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BelowZero {
    /// Unreadable (the field has `ge=0` in proxywhirl's model: proxywhirl cannot read it either).
    Corrupt,
    /// Read as 0, with a warning (`access_count`: no lower bound in proxywhirl's model).
    ReadAsZero,
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

    /// The text of a TEXT or BLOB value: pydantic takes UTF-8 bytes for a `str`; Python's
    /// sqlite3 cannot fetch TEXT that is not UTF-8.
    fn utf8<'v>(&self, value: ValueRef<'v>, column: &str) -> Result<&'v str, TierError> {
        match value {
            ValueRef::Text(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| self.corrupt(column, "TEXT that is not UTF-8"))
            }
            ValueRef::Blob(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| self.corrupt(column, "a BLOB that is not UTF-8"))
            }
            other => Err(self.corrupt(column, format_args!("expected TEXT, found {}", Self::found(other)))),
        }
    }

    /// TEXT (UTF-8) or a BLOB of UTF-8, or NULL.
    pub(crate) fn optional_text(&self, i: usize, column: &str) -> Result<Option<String>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            other => self.utf8(other, column).map(|s| Some(s.to_owned())),
        }
    }

    /// TEXT (UTF-8) or a BLOB of UTF-8.
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

    /// A count whose field has `ge=0` in proxywhirl's model: a non-negative INTEGER, or any
    /// other value pydantic reads as an integer ([`Columns::lax_count`]); a negative one is
    /// corrupt.
    pub(crate) fn count(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
            other => self.lax_count(other, column, BelowZero::Corrupt),
        }
    }

    /// `access_count`, a count without a lower bound in proxywhirl's model: as
    /// [`Columns::count`], but a negative value is read as 0 (with a warning).
    fn use_count(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
            other => self.lax_count(other, column, BelowZero::ReadAsZero),
        }
    }

    /// A count stored as anything but a non-negative INTEGER, read as pydantic 2 reads an `int`
    /// in lax mode: a negative INTEGER; a REAL without a fraction strictly between -2^63 and
    /// 2^63; the text of an integer (TEXT, or a BLOB of UTF-8: [`python_int`]). Beyond `u64`
    /// it is read as `u64::MAX`, below zero as `below_zero` says; either with a warning.
    #[cold]
    fn lax_count(&self, value: ValueRef<'_>, column: &str, below_zero: BelowZero) -> Result<u64, TierError> {
        let int = match value {
            ValueRef::Null => return Err(self.corrupt(column, "expected an INTEGER, found NULL")),
            ValueRef::Integer(n) => LaxInt {
                negative: n < 0,
                magnitude: Some(n.unsigned_abs()),
            },
            ValueRef::Real(x) => int_of_real(x).map_err(|why| self.corrupt(column, format_args!("REAL {x} {why}")))?,
            ValueRef::Text(_) | ValueRef::Blob(_) => {
                let text = self.utf8(value, column)?;
                python_int(text).ok_or_else(|| {
                    self.corrupt(
                        column,
                        format_args!("{} {:?} is not an integer", Self::found(value), Shown(text)),
                    )
                })?
            }
        };
        match int {
            LaxInt { magnitude: Some(0), .. } => Ok(0),
            LaxInt {
                negative: false,
                magnitude: Some(n),
            } => Ok(n),
            LaxInt {
                negative: false,
                magnitude: None,
            } => {
                tracing::warn!(
                    key = self.key,
                    column,
                    value = %ShownValue(value),
                    "count above the largest this model holds: read as {}",
                    u64::MAX
                );
                Ok(u64::MAX)
            }
            LaxInt { negative: true, .. } => match below_zero {
                BelowZero::Corrupt => Err(self.corrupt(
                    column,
                    format_args!("{} is negative (proxywhirl's model requires >= 0)", ShownValue(value)),
                )),
                BelowZero::ReadAsZero => {
                    tracing::warn!(
                        key = self.key,
                        column,
                        value = %ShownValue(value),
                        "negative count (proxywhirl allows it, this model does not): read as 0"
                    );
                    Ok(0)
                }
            },
        }
    }

    /// A flag, as Python's `bool()` reads the value: NULL, 0, 0.0, empty TEXT and an empty
    /// BLOB are false, every other value true (`'0'` and `'no'` too). L3's NULL too is false
    /// (proxywhirl's L3 cannot read it; its L2 reads it false).
    fn flag(&self, i: usize, column: &str) -> Result<bool, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) => Ok(n != 0),
            ValueRef::Null => Ok(false),
            ValueRef::Real(x) => Ok(x != 0.0),
            ValueRef::Blob(bytes) => Ok(!bytes.is_empty()),
            text @ ValueRef::Text(_) => self.utf8(text, column).map(|s| !s.is_empty()),
        }
    }

    /// A health status: exactly one of its five words, as TEXT or as a BLOB.
    pub(crate) fn status(&self, i: usize, column: &str) -> Result<HealthStatus, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Err(self.corrupt(column, "expected TEXT, found NULL")),
            other => self.utf8(other, column)?.parse().map_err(|e| self.corrupt(column, e)),
        }
    }

    /// A credential token: the bytes of a BLOB (or TEXT). As proxywhirl decrypts only a value
    /// Python takes as true, NULL, an empty value, 0 and 0.0 are no credential.
    fn token(&self, i: usize, column: &str) -> Result<Option<Vec<u8>>, TierError> {
        match self.value(i, column)? {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok((!bytes.is_empty()).then(|| bytes.to_vec())),
            // A float pattern compares with `==`: -0.0 too.
            ValueRef::Null | ValueRef::Integer(0) | ValueRef::Real(0.0) => Ok(None),
            other => Err(self.corrupt(column, format_args!("expected a BLOB, found {}", Self::found(other)))),
        }
    }
}

/// At most this many characters of a value are shown in errors and warnings.
const SHOWN_CHARS: usize = 40;

/// A text in errors, cut at [`SHOWN_CHARS`] characters.
struct Shown<'a>(&'a str);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(SHOWN_CHARS) {
            Some((end, _)) => write!(f, "{:?}...", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// A count's stored value in errors and warnings (never a credential: counts only).
struct ShownValue<'a>(ValueRef<'a>);

impl std::fmt::Display for ShownValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(n) => write!(f, "INTEGER {n}"),
            ValueRef::Real(x) => write!(f, "REAL {x}"),
            ValueRef::Text(bytes) => write!(f, "TEXT {:?}", Shown(&String::from_utf8_lossy(bytes))),
            ValueRef::Blob(bytes) => write!(f, "BLOB {:?}", Shown(&String::from_utf8_lossy(bytes))),
        }
    }
}

/// An integer as read from a stored value: its sign and its magnitude, `None` beyond `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LaxInt {
    negative: bool,
    magnitude: Option<u64>,
}

/// The integer pydantic 2 reads from a float: a finite value without a fraction, strictly
/// between -2^63 and 2^63; else why not.
fn int_of_real(x: f64) -> Result<LaxInt, &'static str> {
    // 2^63, exactly (i64::MAX rounds up to it).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !x.is_finite() {
        Err("is not a finite number")
    } else if x % 1.0 != 0.0 {
        Err("has a fractional part")
    } else if !(-LIMIT < x && x < LIMIT) {
        Err("is beyond what proxywhirl reads from a REAL (±2^63)")
    } else {
        let n = x as i64;
        Ok(LaxInt {
            negative: n < 0,
            magnitude: Some(n.unsigned_abs()),
        })
    }
}

/// Most digits pydantic reads in the text of an integer (Python's own limit).
const MAX_INT_DIGITS: usize = 4300;

/// The integer pydantic 2 (pydantic-core 2.50.5, lax mode) reads from a string, `None` when it
/// reads none. It takes the text as a JSON integer (`-?(0|[1-9][0-9]*)`), or else cleans it
/// and takes the result as one: surrounding whitespace (Unicode's) trimmed, one `+` or `-`
/// (not `+-`, `--`, `-+`) taken off and remembered, leading zeros dropped together with any
/// underscores among them, a fraction of only zeros (`.0`, `.000`, not `.`) dropped, and
/// underscores dropped when none is first, last or doubled. At most 4300 digits. So
/// `" +1_000.00 "` is 1000, `"0005"` is 5, `"-0"` is 0; `"5."`, `"1e3"`, `"0x10"`, `"٣"`,
/// `"1__0"` are none; and pydantic's quirks come along: `"0-5"` is −5, `"0__1"` is 1.
fn python_int(text: &str) -> Option<LaxInt> {
    json_int(false, text, false).or_else(|| {
        let (negative, body, underscores) = clean_int(text)?;
        json_int(negative, body, underscores)
    })
}

/// `body`, with a minus before it when `minus` and without its underscores when
/// `skip_underscores`, as a JSON integer of at most [`MAX_INT_DIGITS`] digits.
fn json_int(minus: bool, body: &str, skip_underscores: bool) -> Option<LaxInt> {
    let mut bytes = body.bytes().filter(|b| !(skip_underscores && *b == b'_')).peekable();
    let mut negative = minus;
    if bytes.next_if_eq(&b'-').is_some() {
        if minus {
            return None;
        }
        negative = true;
    }
    let mut digits = 0usize;
    let mut zero_first = false;
    let mut magnitude = Some(0u64);
    for b in bytes {
        // JSON: no digit after a leading zero.
        if !b.is_ascii_digit() || zero_first {
            return None;
        }
        zero_first = digits == 0 && b == b'0';
        digits += 1;
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(u64::from(b - b'0')));
    }
    (1..=MAX_INT_DIGITS)
        .contains(&digits)
        .then_some(LaxInt { negative, magnitude })
}

/// pydantic's cleaning of an integer string that is not a JSON integer as it is (see
/// [`python_int`]): whether it is negative, what is left to read, and whether to read it
/// without its underscores. `None`: pydantic reads no integer.
fn clean_int(text: &str) -> Option<(bool, &str, bool)> {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix('+') {
        if rest.starts_with('-') {
            return None;
        }
        s = rest;
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        if rest.starts_with(['-', '+']) {
            return None;
        }
        negative = true;
        s = rest;
    }
    s = skip_leading_zeros(s)?;
    if let Some((whole, fraction)) = s.split_once('.')
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b == b'0')
    {
        s = whole;
    }
    let underscores = s.contains('_') && !s.starts_with('_') && !s.ends_with('_') && !s.contains("__");
    Some((negative, s, underscores))
}

/// `s` from its first character that is not a leading zero (or an underscore among them):
/// from the last zero before a `.`; the last character when all are zeros and underscores.
/// `None` when `s` starts with neither a digit nor `-`, or meets another character among its
/// leading zeros.
fn skip_leading_zeros(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    match bytes.first()? {
        b'1'..=b'9' | b'-' => return Some(s),
        b'0' => {}
        _ => return None,
    }
    for (i, b) in bytes.iter().enumerate().skip(1) {
        match b {
            b'0' | b'_' => {}
            b'1'..=b'9' | b'-' => return Some(&s[i..]),
            // The byte before is a `0` or a `_`: one byte wide.
            b'.' => return Some(&s[i - 1..]),
            _ => return None,
        }
    }
    Some(&s[s.len() - 1..])
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
        .build_unchecked(connection_manager(path))
}

/// The flags of every connection to a tier's database: r2d2_sqlite's defaults (read-write,
/// create, no mutex, URI) and `SQLITE_OPEN_NOFOLLOW`: SQLite refuses a database path that is a
/// symbolic link (it checks with `lstat` before its `open`).
pub(crate) fn open_flags() -> OpenFlags {
    OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW
}

/// The connection manager of the database at `path` (see [`open_flags`]).
fn connection_manager(path: &Path) -> SqliteConnectionManager {
    SqliteConnectionManager::file(path)
        .with_flags(open_flags())
        .with_init(init_connection)
}

/// Refuses a database whose file, `-wal` or `-shm` file is a symbolic link or not a regular
/// file (checked with `lstat`; missing ones are fine). SQLite opens these by name itself: a
/// link planted between this check and SQLite's open is not caught here (for the database file
/// `SQLITE_OPEN_NOFOLLOW` catches it too; SQLite opens the `-wal` and `-shm` files without it).
fn check_database_files(path: &Path) -> Result<(), TierError> {
    private_fs::check_path_regular(path).map_err(TierError::io("open database file", path))?;
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let side = PathBuf::from(name);
        private_fs::check_path_regular(&side).map_err(TierError::io("open database file", &side))?;
    }
    Ok(())
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
        check_database_files(&path)?;
        let manager = connection_manager(&path);
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
        check_database_files(&self.path)?;
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

    /// [`CacheTier::mark_failure`] in one `BEGIN IMMEDIATE` transaction, which holds the
    /// database's write lock from the read to the commit: the row is read and checked readable
    /// (every value fits its field, every token opens; an unreadable row is left untouched and
    /// reported as the lookup reports it), then its two columns are updated (`failure_count` to
    /// the count read plus one, `health_status` to `unhealthy`; no other column, `updated_at`
    /// neither), or the row is deleted when that count reaches `evict_at`. No other writer of the
    /// file, in this process or another, can come between the read and the write. The count is
    /// written as read plus one rather than `failure_count + 1` in SQL: the value read is the
    /// one the lax reader took from the row (a proxywhirl file may hold `'3'` or `3.0`).
    /// [`CacheTier::rotate_credentials`]: the row read (checked readable) and its two token
    /// columns rewritten in one write transaction; nothing else changes (`updated_at` included).
    pub(crate) fn rotate_credentials(&self, key: &str) -> Result<crate::Rotated, TierError> {
        self.write("rotate credentials", |tx| {
            let Some(stored) = self.read(tx, key)? else {
                return Ok(crate::Rotated::Absent);
            };
            let (username, password) = (stored.username.clone(), stored.password.clone());
            if username.is_none() && password.is_none() {
                return Ok(crate::Rotated::NoCredentials);
            }
            // Readable as a whole (an unreadable row is left as it is).
            drop(stored.open(&self.ring)?);
            let rotate = |token: Option<Vec<u8>>| {
                token
                    .map(|bytes| self.ring.rotate_bytes(&bytes))
                    .transpose()
                    .map_err(|source| TierError::Crypto {
                        key: key.to_owned(),
                        source,
                    })
            };
            let (username, password) = (rotate(username)?, rotate(password)?);
            tx.prepare_cached(self.layout.statements().rotate_tokens)
                .and_then(|mut stmt| stmt.execute(rusqlite::params![key, username, password]))
                .map_err(self.err("rotate credentials"))?;
            Ok(crate::Rotated::Rewritten)
        })
    }

    pub(crate) fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let mark = self.write("mark failure", |tx| {
            let Some(stored) = self.read(tx, key)? else {
                return Ok(FailureMark::Absent);
            };
            // Decrypted only to check it opens; the plaintext is dropped (zeroized) at once.
            let failure_count = stored.open(&self.ring)?.failure_count.saturating_add(1);
            let s = self.layout.statements();
            if evict_at.is_some_and(|at| failure_count >= at) {
                tx.prepare_cached(s.delete)
                    .and_then(|mut stmt| stmt.execute([key]))
                    .map_err(self.err("mark failure"))?;
                return Ok(FailureMark::Evicted { failure_count });
            }
            tx.prepare_cached(s.mark_failure)
                .and_then(|mut stmt| {
                    stmt.execute(rusqlite::params![
                        key,
                        count_param(failure_count),
                        HealthStatus::Unhealthy.as_str()
                    ])
                })
                .map_err(self.err("mark failure"))?;
            Ok(FailureMark::Marked { failure_count })
        });
        if let Err(e) = &mark
            && e.is_corrupt_entry()
        {
            tracing::warn!(key, path = %self.path.display(), error = %e, "unreadable entry in cache database");
        }
        let mark = mark?;
        if matches!(mark, FailureMark::Evicted { .. })
            && let Some(touches) = &self.touches
        {
            touches.forget(key);
        }
        Ok(mark)
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

    /// [`CacheTier::delete_if_unchanged_since`]: L3 compares `updated_at`; L2 (proxywhirl's
    /// `l2_cache` keeps no write time) deletes.
    pub(crate) fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        if self.layout == Layout::L2 {
            return self.delete(key);
        }
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(self.layout.statements().delete_unchanged)
            .map_err(self.err("delete entry"))?;
        Ok(stmt
            .execute(rusqlite::params![key, to_unix_seconds(since)])
            .map_err(self.err("delete entry"))?
            > 0)
    }

    /// [`CacheTier::clear_unchanged_since`]: L3 compares `updated_at`; L2 clears.
    pub(crate) fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        if self.layout == Layout::L2 {
            return self.clear();
        }
        if let Some(touches) = &self.touches {
            touches.take();
        }
        self.write("clear entries", |tx| {
            tx.prepare_cached(self.layout.statements().clear_unchanged)
                .and_then(|mut stmt| stmt.execute([to_unix_seconds(since)]))
                .map_err(self.err("clear entries"))
        })
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

            /// L3 compares `updated_at`; L2 has no write time and deletes.
            fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
                self.store
                    .health
                    .observe(self.store.delete_if_unchanged_since(key, since))
            }

            /// L3 compares `updated_at`; L2 has no write time and clears.
            fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
                self.store.health.observe(self.store.clear_unchanged_since(since))
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

            /// Read, checked readable and its tokens rewritten in one write transaction.
            fn rotate_credentials(&self, key: &str) -> Result<$crate::Rotated, TierError> {
                self.store.health.observe(self.store.rotate_credentials(key))
            }

            /// Read, checked readable and updated (or deleted) in one write transaction.
            fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<$crate::FailureMark, TierError> {
                self.store.health.observe(self.store.mark_failure(key, evict_at))
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
mod tests;
