//! [`Store`]: one table of entries in one database file, behind a pool: what both tiers run.
//! Here: the store, opening and closing it, and its plain operations (read, get, put, delete,
//! clear, keys, size, probe). Its other methods are in the files of their concern: `pool.rs`
//! (connections), `hits.rs` (recording uses), `evict.rs` (the bound), `expire.rs` (expiry
//! cleanup), `unreadable.rs` (rows that cannot be read), `health.rs` (failure marks, health
//! detail) and `credentials.rs` (rotation, samples).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use pw_cache_crypto::{KeyRing, private_fs};
use pw_cache_model::timestamp::{self, to_unix_seconds};
use pw_cache_model::{CacheEntry, CacheTierConfig, EvictionPolicy, OffsetDateTime};
use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::checkpoint::Checkpointer;
use super::pool::{SqlitePool, check_database_files, new_pool, open_first};
use super::row::{EntryRow, read_row};
use super::statements::Layout;
use crate::entry_codec::StoredEntry;
use crate::error::TierError;
use crate::tier::TierHealth;
use crate::touches::Touches;

/// Maps a SQLite error to [`TierError::Sqlite`].
pub(crate) fn sql_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(rusqlite::Error) -> TierError + 'a {
    move |source| TierError::Sqlite {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One table of entries in one database file, behind a pool: what both tiers run.
#[derive(Debug)]
pub(crate) struct Store {
    pub(super) layout: Layout,
    pub(super) path: PathBuf,
    pub(super) pool: RwLock<Option<SqlitePool>>,
    /// The connection the last operation returned, kept out of the pool for the next one
    /// (see [`Store::conn`]).
    pub(super) spare: Mutex<Option<PooledConnection<SqliteConnectionManager>>>,
    /// Changed (under `spare`'s lock) when the pool is replaced or closed: a connection of an
    /// earlier pool is not kept as the spare.
    pub(super) generation: AtomicU64,
    pub(super) ring: Arc<KeyRing>,
    max_entries: Option<u64>,
    pub(super) policy: EvictionPolicy,
    /// `Some` for bounded LRU and LFU tiers.
    pub(super) touches: Option<Touches>,
    pub(super) evictions: AtomicU64,
    /// Unreadable rows that cleanup and eviction met and left in place.
    pub(super) unreadable_skipped: AtomicU64,
    /// Whether the bound was exceeded because only unreadable rows were left to evict (warned
    /// once).
    pub(super) over_bound_warned: std::sync::atomic::AtomicBool,
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
        let mut first = open_first(&path)?;
        schema(&mut first, &path)?;
        drop(first);
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
            let mut pool = crate::locks::write(&self.pool);
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

    /// Writes pending hits and closes every connection (once the operations under way end).
    /// Later operations fail with [`TierError::Closed`]. Closing twice does nothing.
    pub(crate) fn close(&self) -> Result<(), TierError> {
        let open = crate::locks::read(&self.pool).is_some();
        let flushed = if open { self.flush_touches() } else { Ok(()) };
        let pool = crate::locks::write(&self.pool).take();
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
