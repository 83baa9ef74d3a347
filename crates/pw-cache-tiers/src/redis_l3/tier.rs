//! [`RedisL3Tier`]: its state, opening it, closing it, and its [`TierBackend`] impl (so its
//! [`CacheTier`]), whose operations live in the files named after them (`read.rs`, `put.rs`,
//! `delete.rs`, …).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use pw_cache_crypto::KeyRing;
use pw_cache_model::timestamp::to_unix_seconds;
use pw_cache_model::{
    AccessRecord, CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, HealthDetail, OffsetDateTime,
};

use crate::backend::TierBackend;
use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, TierHealth};
use crate::touches::Touches;

use super::codec::real;
use super::names::Names;
use super::options::RedisL3Options;
use super::pool::{Connector, RedisPool};
use super::redact::Redactor;
use super::replies::ExpiredChunk;
use super::scripts::{SCRIPT_CHUNK, SCRIPTS};

/// The L3 tier in Redis: see the module docs.
pub struct RedisL3Tier {
    pub(super) connector: Arc<Connector>,
    pub(super) pool: RwLock<Option<RedisPool>>,
    pub(super) names: Names,
    pub(super) ring: Arc<KeyRing>,
    pub(super) max_entries: Option<u64>,
    pub(super) policy: EvictionPolicy,
    /// `Some` for bounded LRU and LFU tiers.
    pub(super) touches: Option<Touches>,
    pub(super) evictions: AtomicU64,
    /// Unreadable entries eviction met and left in place.
    pub(super) unreadable_skipped: AtomicU64,
    /// Whether the bound was exceeded because only unreadable entries were left to evict
    /// (warned once).
    pub(super) over_bound_warned: AtomicBool,
    pub(super) health: TierHealth,
    pub(super) origin: u64,
    pub(super) pool_size: u32,
    pub(super) history_cap: usize,
    pub(super) redactor: Arc<Redactor>,
}

impl fmt::Debug for RedisL3Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisL3Tier")
            .field("url", &"***")
            .field("prefix", &self.names.prefix)
            .field("origin", &format_args!("{:016x}", self.origin))
            .field("max_entries", &self.max_entries)
            .field("policy", &self.policy)
            .field("connect_timeout", &self.connector.connect_timeout)
            .field("command_timeout", &self.connector.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("history_cap", &self.history_cap)
            .field("health", &self.health)
            .finish()
    }
}

impl RedisL3Tier {
    /// Connects to the server of `options` and checks it answers (`PING`). Entries hold at
    /// most `config.max_entries` under `config.eviction_policy`; credentials are encrypted
    /// with `ring`'s current key and decrypted with any of its keys.
    ///
    /// Then checks the server's version (Redis 7.0 or newer, see
    /// [Redis version](super#redis-version)) and the namespace's indexes, which it rebuilds
    /// when they are damaged ([`RedisL3Tier::rebuild_index`]).
    ///
    /// Errors ([`TierError::Remote`], never holding the URL): options that cannot be used, a
    /// URL that does not parse (or `rediss://`, or root certificates, without the `redis-tls`
    /// feature), no server answering within about the connect timeout (nor, for `rediss://`,
    /// with a certificate that chains to a trusted root), a refused password;
    /// [`TierError::UnsupportedServer`]: a server older than Redis 7.0; a damaged index that
    /// cannot be rebuilt (e.g. the server is over `maxmemory`).
    pub fn open(options: &RedisL3Options, config: &CacheTierConfig, ring: Arc<KeyRing>) -> Result<Self, TierError> {
        options.check()?;
        let redactor = Arc::new(Redactor::new(options.url.expose_secret()));
        let client = options.client().map_err(|e| TierError::Remote {
            op: "open",
            reason: redactor.clean(&e),
        })?;
        let tracks_hits = config.max_entries.is_some() && config.eviction_policy != EvictionPolicy::Fifo;
        let tier = Self {
            connector: Arc::new(Connector {
                client,
                connect_timeout: options.connect_timeout,
                command_timeout: options.command_timeout,
            }),
            pool: RwLock::new(None),
            names: Names::new(&options.namespace),
            ring,
            max_entries: config.max_entries,
            policy: config.eviction_policy,
            touches: tracks_hits.then(Touches::default),
            evictions: AtomicU64::new(0),
            unreadable_skipped: AtomicU64::new(0),
            over_bound_warned: AtomicBool::new(false),
            health: TierHealth::new(),
            origin: random_origin(),
            pool_size: options.pool_size,
            history_cap: options.history_cap,
            redactor,
        };
        *crate::locks::write(&tier.pool) = Some(tier.new_pool());
        tier.run("connect", None, |c| redis::cmd("PING").query::<()>(c))?;
        tier.check_server_version()?;
        // Damaged indexes are found, and rebuilt, by the check every index script starts with.
        tier.script::<i64>("check index", &SCRIPTS.size, &[])?;
        Ok(tier)
    }

    /// The random id of this tier instance, the `<origin>` of the events it publishes.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The prefix of every key of the tier: `pwc:{namespace}:`.
    pub fn key_prefix(&self) -> &str {
        &self.names.prefix
    }

    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Rebuilds the namespace's indexes (`idx`, `exp`, `ins`) from its entry hashes; how many
    /// entries they index afterwards.
    ///
    /// Done by the tier itself when it finds them damaged — at open, and by every script that
    /// relies on them (put, delete, clear, size, keys, expiry cleanup), which then runs again
    /// — so that the tier is never silently smaller than what Redis holds. For an operator,
    /// e.g. after a restore of some keys only.
    ///
    /// In steps, none of them long: an index key of another type is deleted; every
    /// `pwc:{ns}:e:*` key is found with `SCAN` (in chunks of 1,000: the whole keyspace of the
    /// database is walked, the other namespaces' keys too) and indexed: `exp` by its
    /// `expires_at`, `idx` by the policy's field (`last_accessed`, `access_count`, or the
    /// insertion order), `ins` keeps an entry's place, and entries that had none get the next
    /// places in the order of their `created_at` (insertion order approximated). An entry whose
    /// fields are unreadable is indexed too (it is counted, listed and cleared, and eviction and
    /// expiry skip it as always). Then index members without an entry are dropped. Other tier
    /// instances may go on meanwhile: each step is atomic per key.
    ///
    /// Errors: [`TierError::Remote`] (the server is unreachable, or over `maxmemory`: a rebuild
    /// adds to the indexes, so it is refused like any write).
    pub fn rebuild_index(&self) -> Result<usize, TierError> {
        self.health.record(|| self.rebuild_indexes())
    }

    /// Writes the get hits noted for LRU/LFU so far (also done by itself every
    /// [`TOUCH_BATCH`](crate::sqlite::TOUCH_BATCH) hits and before an eviction).
    pub fn flush(&self) -> Result<(), TierError> {
        CacheTier::flush(self)
    }

    /// Writes pending hits and closes the pool. Later operations fail with
    /// [`TierError::Closed`]; closing again does nothing. Dropping the tier closes it too.
    pub fn close(&self) -> Result<(), TierError> {
        CacheTier::close(self)
    }

    pub(super) fn policy_arg(&self) -> &'static str {
        self.policy.as_str()
    }
}

/// A random id for this tier instance (std's per-process random hasher keys, the time and a
/// counter).
fn random_origin() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Drop for RedisL3Tier {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(prefix = %self.names.prefix, error = %e, "closing the Redis tier failed");
        }
    }
}

/// The tier's operations, in the files named after them; [`CacheTier`] comes with them, their
/// outcomes recorded in the tier's health (`crate::backend`). Redis has no conditional
/// promotion, removal of unreadable entries or compaction of its own ([`CacheTier`]'s
/// defaults: `contains` then `put`; every key looked up; nothing to drop).
impl TierBackend for RedisL3Tier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L3
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.lookup(key)
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.read_entry(key)
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.store(entry)
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.remove(key)
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.remove_all()
    }

    fn size(&self) -> Result<usize, TierError> {
        let n: i64 = self.script("count entries", &SCRIPTS.size, &[])?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.list_keys()
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        let name = self.names.entry(key);
        self.run("look up key", None, |c| redis::cmd("EXISTS").arg(&name).query(c))
    }

    /// Removes the readable entries expired at `now`, in chunks: each chunk's entries are read
    /// by one script, checked here, and the readable ones removed by a second script if still
    /// at the version read. Unreadable entries are left in place and counted.
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = real(to_unix_seconds(now));
        let chunk = SCRIPT_CHUNK.to_string();
        let mut removed = 0;
        // Entries left in the expired range (unreadable, or changed meanwhile): skipped over.
        let mut offset = 0usize;
        loop {
            let offset_arg = offset.to_string();
            let chunk_read = self
                .script::<redis::Value>(
                    "delete expired entries",
                    &SCRIPTS.cleanup,
                    &[&now, &chunk, &offset_arg, "ask"],
                )
                .and_then(|value| ExpiredChunk::parse(&value))?;
            let (readable, skipped) = self.readable_victims(&chunk_read.entries, chunk_read.entries.len());
            self.unreadable_skipped.fetch_add(skipped, Ordering::Relaxed);
            let mut deleted = 0;
            if !readable.is_empty() {
                let mut args: Vec<&str> = vec![&now, &chunk, &offset_arg, "del"];
                for (key, stamp) in &readable {
                    args.push(key);
                    args.push(stamp);
                }
                let n = self.script::<i64>("delete expired entries", &SCRIPTS.cleanup, &args)?;
                deleted = usize::try_from(n).unwrap_or(0);
            }
            removed += deleted;
            offset += chunk_read.entries.len().saturating_sub(deleted);
            if chunk_read.seen < SCRIPT_CHUNK {
                return Ok(removed);
            }
        }
    }

    fn health(&self) -> &TierHealth {
        &self.health
    }

    /// One script for the whole batch.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.write_accesses(records)
    }

    /// A read (checked readable), then one script that increments, decides and publishes, and
    /// refuses when the entry changed since the read, then reads again ([`pw_cache::docs::formats`],
    /// "Health marks").
    ///
    /// [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.mark_entry_failed(key, evict_at)
    }

    /// A read (checked readable), then one script that writes the re-encrypted tokens only if
    /// the stored ones are still those read.
    fn rotate_credentials(&self, key: &str) -> Option<Result<crate::Rotated, TierError>> {
        Some(self.rotate_tokens(key))
    }

    /// Reads the eight fields alone (no credential is decrypted).
    fn health_detail(&self, key: &str) -> Option<Result<Option<HealthDetail>, TierError>> {
        Some(self.read_health_detail(key))
    }

    fn evictions(&self) -> u64 {
        RedisL3Tier::evictions(self)
    }

    fn unreadable_skipped(&self) -> u64 {
        self.unreadable_skipped.load(Ordering::Relaxed)
    }

    /// One script: compares the hash's `updated_at` and removes it if not newer.
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Option<Result<bool, TierError>> {
        Some(self.remove_unchanged_since(key, since))
    }

    /// In chunks of the index, each one script.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Option<Result<usize, TierError>> {
        Some(self.remove_all_unchanged_since(since))
    }

    /// The credentials of the entries first in the index.
    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.sample_tokens(limit)
    }

    /// The get hits noted for LRU/LFU so far.
    fn flush(&self) -> Option<Result<(), TierError>> {
        Some(self.flush_touches())
    }

    /// Writes pending hits and closes the pool.
    fn close(&self) -> Result<(), TierError> {
        let open = crate::locks::read(&self.pool).is_some();
        let flushed = if open { self.flush_touches() } else { Ok(()) };
        drop(crate::locks::write(&self.pool).take());
        flushed
    }

    /// `PING`, then a write and a delete of `pwc:{ns}:probe`, on new connections.
    fn probe(&self) -> Result<(), TierError> {
        self.probe_server()
    }
}
