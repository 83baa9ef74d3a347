//! The two SQLite tiers, L2 ([`l2`], also `crate::sqlite_l2`) and L3 ([`l3`], also
//! `crate::sqlite_l3`), and what they share: the connection pool and its per-connection
//! pragmas, the schema version, the mapping between an entry and its row, and the store that
//! runs the statements both tiers use. [`l2`] and [`l3`] own their tables' definitions and
//! what only they do (JSONL migration; health history).
//!
//! # Where things are
//!
//! | file | what it holds |
//! |---|---|
//! | `l2.rs`, `l3.rs` | the two tiers: their tables, opening and upgrading them, what only they do |
//! | `tier.rs` | the [`TierBackend`](crate::TierBackend) implementation of both (so their [`CacheTier`](crate::CacheTier)) |
//! | `store.rs` | the store both tiers run: opening, closing, get, put, delete, clear, keys, probe |
//! | `pool.rs` | connections: the pool, the spare, the busy handler and pragmas, the checks before opening |
//! | `schema.rs` | the schema version and its upgrade; the column types a tier accepts |
//! | `statements.rs` | the SQL of each table |
//! | `row.rs`, `lax_int.rs` | the row codec (the SQLite side of the entry codec both databases share, `entry_codec.rs`): an entry's values as bound, a row read back as proxywhirl reads it |
//! | `hits.rs`, `evict.rs` | recording uses; the bound and eviction |
//! | `expire.rs`, `unreadable.rs` | expiry cleanup; rows that cannot be read |
//! | `health.rs`, `credentials.rs` | failure marks and health detail; credential rotation and samples |
//! | `checkpoint.rs` | the background WAL checkpoints ([`checkpoint`], also `crate::checkpoint`) |
//! | `tests.rs` | the unit tests of the mechanics both tiers share |
//!
//! # Connections
//!
//! An r2d2 pool of up to [`MAX_CONNECTIONS`] connections (grown on demand from one), and in
//! front of it one *spare*: the connection the last operation gave back, handed to the next
//! without r2d2's checkout (`Store::conn`). Each connection, when made, gets:
//! - a **busy handler** that retries a locked database for about [`BUSY_TIMEOUT`] (every 50 µs
//!   for the first 5 ms, then every millisecond), so two writers — threads of this process or
//!   other processes — wait for each other instead of failing, and without SQLite's default
//!   backoff, which sleeps up to 100 ms at a time;
//! - `synchronous = NORMAL` and `foreign_keys = ON`;
//! - a page cache of up to [`PAGE_CACHE_KIB`] (SQLite's default is 2 MiB): a large cache's
//!   lookups otherwise read their index and table pages from the file again and again. SQLite
//!   allocates the cache as it reads pages, so a small database costs no more than before;
//! - a cache of [`STATEMENT_CACHE_CAPACITY`] prepared statements: every statement is prepared
//!   once per connection (`prepare_cached`);
//! - a WAL hook ([`checkpoint::note_wal_frames`]) in place of SQLite's automatic
//!   checkpoint: a connection going back to the pool after a commit that filled the log asks
//!   the tier's checkpoint thread to copy it into the database file ([`checkpoint`]).
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
//!
//! [`TierError::Corrupt`]: crate::TierError::Corrupt
//! [`TierError::Crypto`]: crate::TierError::Crypto
//! [`TierError::Schema`]: crate::TierError::Schema

mod credentials;
mod evict;
mod expire;
mod health;
mod hits;
mod lax_int;
mod pool;
mod row;
mod schema;
mod statements;
mod store;
mod tier;
mod unreadable;

pub mod checkpoint;
pub mod l2;
pub mod l3;

pub use hits::TOUCH_BATCH;
pub use pool::{BUSY_TIMEOUT, MAX_CONNECTIONS, PAGE_CACHE_KIB, STATEMENT_CACHE_CAPACITY};
pub use schema::SCHEMA_VERSION;

#[cfg(test)]
mod tests;
