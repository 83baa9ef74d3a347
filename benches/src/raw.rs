//! Raw rusqlite on the SQLite tiers' own schema: the floor under them.
//!
//! Hand-written statements on the database a tier creates, with the tiers' pragmas (WAL,
//! `synchronous = NORMAL`, `foreign_keys = ON`, a page cache of
//! [`PAGE_CACHE_KIB`]), their background WAL
//! checkpoints ([`Db`]) and cached prepared statements,
//! at the tiers' durability (one autocommit upsert per put), and nothing else: no pool, no row
//! decoding (values are copied out as SQLite gives them), no encryption (rows carry tokens made
//! beforehand, [`tokens`]). Used by the `sqlite_tiers` divan bench (each tier beside its
//! baseline) and by the replay's `floor` configuration (the least work any manager on these
//! files must do per operation).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use pw_cache::model::timestamp::{self, to_unix_seconds};
use pw_cache::tiers::checkpoint::{self, Checkpointer};
use pw_cache::tiers::sqlite::PAGE_CACHE_KIB;
use pw_cache::tiers::sqlite_l2::DB_FILE_NAME;
use pw_cache::{CacheEntry, CacheTierConfig, KeyRing, Secret, SqliteL2Tier, SqliteL3Tier};
use rusqlite::types::Value;
use rusqlite::{Connection, ToSql, params};

/// Which tier's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// proxywhirl's `l2_cache` (13 columns).
    L2,
    /// proxywhirl's `cache_entries` (23 columns).
    L3,
}

/// The L2 upsert, as the tier's (every column set).
pub const L2_UPSERT: &str = "INSERT INTO l2_cache (key, proxy_url, username_encrypted, password_encrypted, source, \
    fetch_time, last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(key) DO UPDATE SET \
    proxy_url = excluded.proxy_url, username_encrypted = excluded.username_encrypted, \
    password_encrypted = excluded.password_encrypted, source = excluded.source, fetch_time = excluded.fetch_time, \
    last_accessed = excluded.last_accessed, access_count = excluded.access_count, \
    ttl_seconds = excluded.ttl_seconds, expires_at = excluded.expires_at, health_status = excluded.health_status, \
    failure_count = excluded.failure_count, evicted_from_l1 = excluded.evicted_from_l1";

/// The L3 upsert, as the tier's (health-check columns at their defaults).
pub const L3_UPSERT: &str = "INSERT INTO cache_entries (key, proxy_url, username_encrypted, password_encrypted, source, \
    fetch_time, last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
    last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
    next_check_time, last_health_error, total_health_checks, total_health_check_failures, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, 0, 0, 0, NULL, NULL, 0, 0, ?14, ?14) \
    ON CONFLICT(key) DO UPDATE SET proxy_url = excluded.proxy_url, \
    username_encrypted = excluded.username_encrypted, password_encrypted = excluded.password_encrypted, \
    source = excluded.source, fetch_time = excluded.fetch_time, last_accessed = excluded.last_accessed, \
    access_count = excluded.access_count, ttl_seconds = excluded.ttl_seconds, expires_at = excluded.expires_at, \
    health_status = excluded.health_status, failure_count = excluded.failure_count, \
    evicted_from_l1 = excluded.evicted_from_l1, updated_at = excluded.updated_at";

/// The L2 read of one entry.
pub const L2_SELECT: &str = "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
    last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1 \
    FROM l2_cache WHERE key = ?1";

/// The L3 read of one entry.
pub const L3_SELECT: &str = "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
    last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
    last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
    next_check_time, last_health_error, total_health_checks, total_health_check_failures \
    FROM cache_entries WHERE key = ?1";

/// The tiers' record of an evicted entry's use in L2 (its count and last access; the newer
/// use wins).
pub const L2_RECORD_USE: &str = "UPDATE l2_cache SET access_count = ?2, last_accessed = ?3, \
    evicted_from_l1 = max(evicted_from_l1, ?4) WHERE key = ?1 AND last_accessed <= ?3";

/// The same in L3, which also moves `updated_at`.
pub const L3_RECORD_USE: &str = "UPDATE cache_entries SET access_count = ?2, last_accessed = ?3, \
    evicted_from_l1 = max(evicted_from_l1, ?4), updated_at = ?5 WHERE key = ?1 AND last_accessed <= ?3";

/// L3's health-check detail of one entry (what `l2_cache` has no columns for).
pub const L3_HEALTH_DETAIL: &str = "SELECT last_health_check, consecutive_health_failures, \
    consecutive_health_successes, recovery_attempt, next_check_time, last_health_error, total_health_checks, \
    total_health_check_failures FROM cache_entries WHERE key = ?1";

/// An entry's username and password tokens (the bytes stored), if set.
pub type Tokens = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Each entry's credential tokens, made with `ring` (the baseline's rows carry these).
pub fn tokens(entries: &[CacheEntry], ring: &KeyRing) -> Vec<Tokens> {
    let seal = |s: &Option<Secret>| s.as_ref().map(|s| ring.encrypt(s).into_bytes());
    entries.iter().map(|e| (seal(&e.username), seal(&e.password))).collect()
}

/// An empty database with the tier's schema (created by the tier itself), at
/// `dir/l2_cache.db` or `dir/l3.db`; returns its path.
pub fn create(table: Table, dir: &Path, ring: &Arc<KeyRing>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(match table {
        Table::L2 => {
            SqliteL2Tier::open(dir, &CacheTierConfig::unbounded(), Arc::clone(ring))?.close()?;
            dir.join(DB_FILE_NAME)
        }
        Table::L3 => {
            let path = dir.join("l3.db");
            SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), Arc::clone(ring))?.close()?;
            path
        }
    })
}

/// A connection with the tiers' pragmas and their WAL checkpoints
/// ([`pw_cache::tiers::checkpoint`]: a background thread copies the log, so a commit that
/// fills it does not).
pub struct Db {
    conn: Connection,
    checkpoints: Checkpointer,
}

impl std::ops::Deref for Db {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Db {
    /// The checkpoint step the tiers take after a commit (for a commit made through the
    /// connection directly).
    pub fn committed(&self) {
        self.checkpoints.after_commit(&self.conn);
    }

    /// [`put`], then the checkpoint step the tiers take after a commit.
    pub fn put(&self, table: Table, e: &CacheEntry, tokens: &Tokens) -> Result<usize> {
        let changed = put(&self.conn, table, e, tokens)?;
        self.committed();
        Ok(changed)
    }

    /// [`record_uses`], then the checkpoint step the tiers take after a commit.
    pub fn record_uses(&mut self, table: Table, uses: &[Use]) -> Result<usize> {
        let changed = record_uses(&mut self.conn, table, uses)?;
        self.committed();
        Ok(changed)
    }
}

/// A connection to `path` with the tiers' pragmas and checkpoints.
pub fn connection(path: &Path) -> Result<Db> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.wal_hook(Some(checkpoint::note_wal_frames));
    Ok(Db {
        conn,
        checkpoints: Checkpointer::new(path),
    })
}

/// The put of `e` with its `tokens`: one autocommit upsert (or one statement of the caller's
/// transaction). Returns the rows changed.
pub fn put(conn: &Connection, table: Table, e: &CacheEntry, tokens: &Tokens) -> Result<usize> {
    let (user, pass) = tokens;
    let fetch = to_unix_seconds(e.fetch_time);
    let last = to_unix_seconds(e.last_accessed);
    let expires = to_unix_seconds(e.expires_at);
    let count = i64::try_from(e.access_count)?;
    let ttl = i64::try_from(e.ttl_seconds)?;
    let failures = i64::try_from(e.failure_count)?;
    let status = e.health_status.as_str();
    let evicted = i64::from(e.evicted_from_l1);
    let common: [&dyn ToSql; 13] = [
        &e.key,
        &e.proxy_url,
        user,
        pass,
        &e.source,
        &fetch,
        &last,
        &count,
        &ttl,
        &expires,
        &status,
        &failures,
        &evicted,
    ];
    Ok(match table {
        Table::L2 => conn.prepare_cached(L2_UPSERT)?.execute(&common[..])?,
        Table::L3 => {
            let created = to_unix_seconds(timestamp::now_utc());
            let mut all = common.to_vec();
            all.push(&created);
            conn.prepare_cached(L3_UPSERT)?.execute(&all[..])?
        }
    })
}

/// The get of `key`: one indexed read, the row's values copied out (no decoding).
pub fn get(conn: &Connection, table: Table, key: &str) -> Result<Option<Vec<Value>>> {
    let (sql, columns) = match table {
        Table::L2 => (L2_SELECT, 13),
        Table::L3 => (L3_SELECT, 21),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        None => Ok(None),
        Some(row) => Ok(Some((0..columns).map(|i| row.get(i)).collect::<Result<_, _>>()?)),
    }
}

/// L3's health-check detail of `key` (eight values, copied out), if the row exists.
pub fn health_detail(conn: &Connection, key: &str) -> Result<Option<Vec<Value>>> {
    let mut stmt = conn.prepare_cached(L3_HEALTH_DETAIL)?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        None => Ok(None),
        Some(row) => Ok(Some((0..8).map(|i| row.get(i)).collect::<Result<_, _>>()?)),
    }
}

/// One evicted entry's use: key, access count, last access (Unix seconds).
pub type Use = (String, i64, f64);

/// Records `uses` (sorted by key, as the manager applies them) in one transaction: the
/// tiers' `record_accesses`. Returns the rows changed.
pub fn record_uses(conn: &mut Connection, table: Table, uses: &[Use]) -> Result<usize> {
    let tx = conn.transaction()?;
    let mut changed = 0;
    {
        let now = to_unix_seconds(timestamp::now_utc());
        let mut stmt = tx.prepare_cached(match table {
            Table::L2 => L2_RECORD_USE,
            Table::L3 => L3_RECORD_USE,
        })?;
        for (key, count, last) in uses {
            changed += match table {
                Table::L2 => stmt.execute(params![key, count, last, 1])?,
                Table::L3 => stmt.execute(params![key, count, last, 1, now])?,
            };
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// The credentials in a row [`get`] returned, decrypted (what a get must hand out): `None`
/// for a column without a token.
pub fn decrypt_credentials(ring: &KeyRing, row: &[Value]) -> Result<(Option<Secret>, Option<Secret>)> {
    let open = |i: usize| -> Result<Option<Secret>> {
        match row.get(i) {
            Some(Value::Blob(b)) => Ok(Some(ring.decrypt_bytes(b)?)),
            Some(Value::Text(t)) => Ok(Some(ring.decrypt_bytes(t.as_bytes())?)),
            _ => Ok(None),
        }
    };
    Ok((open(2)?, open(3)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test stops at the first error, with it")]
mod tests {
    use super::*;
    use crate::workload::Workload;
    use pw_cache::FernetKey;

    /// What the baseline writes, the tier reads back field by field (so the baseline is
    /// measuring the tier's format, not another), and the baseline reads and decrypts it.
    #[test]
    fn baseline_rows_are_the_tiers_rows() {
        let ring = Arc::new(KeyRing::new(FernetKey::generate(), []));
        let work = Workload::new(4, timestamp::now_utc());
        let toks = tokens(&work.entries, &ring);
        let dir = tempfile::tempdir().unwrap();
        for table in [Table::L2, Table::L3] {
            let sub = dir.path().join(format!("{table:?}"));
            let path = create(table, &sub, &ring).unwrap();
            let conn = connection(&path).unwrap();
            for (e, t) in work.entries.iter().zip(&toks) {
                assert_eq!(put(&conn, table, e, t).unwrap(), 1);
            }
            let row = get(&conn, table, &work.entries[1].key).unwrap().unwrap();
            let (user, pass) = decrypt_credentials(&ring, &row).unwrap();
            assert_eq!(user.unwrap().expose_secret(), "user1");
            assert_eq!(pass.unwrap().expose_secret(), "pass-1-secret");
            assert!(get(&conn, table, &work.miss_keys[0]).unwrap().is_none());
            let later = to_unix_seconds(timestamp::now_utc()) + 60.0;
            let mut conn = conn;
            let uses = [
                (work.entries[2].key.clone(), 7, later),
                (work.miss_keys[1].clone(), 1, later),
            ];
            assert_eq!(record_uses(&mut conn, table, &uses).unwrap(), 1);
            if table == Table::L3 {
                let detail = health_detail(&conn, &work.entries[0].key).unwrap().unwrap();
                assert_eq!(detail.len(), 8);
                assert_eq!(detail[0], Value::Null);
                assert!(health_detail(&conn, &work.miss_keys[0]).unwrap().is_none());
            }
            drop(conn);
            let tier: Box<dyn pw_cache::CacheTier> = match table {
                Table::L2 => {
                    Box::new(SqliteL2Tier::open(&sub, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap())
                }
                Table::L3 => {
                    Box::new(SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap())
                }
            };
            for e in &work.entries {
                let back = tier.get(&e.key).unwrap().unwrap();
                assert_eq!(back.proxy_url, e.proxy_url);
                assert_eq!(
                    back.username.as_ref().map(|s| s.expose_secret().to_owned()),
                    e.username.as_ref().map(|s| s.expose_secret().to_owned())
                );
                assert_eq!(
                    back.password.as_ref().map(|s| s.expose_secret().to_owned()),
                    e.password.as_ref().map(|s| s.expose_secret().to_owned())
                );
                assert_eq!(back.source, e.source);
                assert_eq!(back.ttl_seconds, e.ttl_seconds);
            }
            assert_eq!(tier.get(&work.entries[2].key).unwrap().unwrap().access_count, 7);
        }
    }
}
