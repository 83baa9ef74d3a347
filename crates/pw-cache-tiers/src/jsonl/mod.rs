//! L2: the JSONL tier, on-disk compatible both ways with proxywhirl 0.3.3's `JsonlCacheTier`.
//!
//! The format (specified in [`pw_cache::docs::formats`]): 16 files `shard_00.jsonl` ..
//! `shard_15.jsonl`; key `k` lives in shard `int(md5(k), 16) % 16` ([`shard_of`]); one JSON
//! object per line, written exactly as Python's `json.dumps` ([`encode_line`]); credentials as
//! lowercase hex of their Fernet tokens; the last line of a key wins.
//!
//! # Design
//!
//! - **Index.** Each shard keeps in memory `key → (offset, length)` of the key's live line, plus
//!   what eviction and expiry need (last use, use count, first insertion, `expires_at`). A get
//!   reads that one line with a positioned read (`pread`) and parses it; it never re-reads a
//!   shard. The index is built when the tier opens (one full read per shard).
//! - **Writes append.** A put appends one line: proxywhirl's reader takes the last line of a
//!   key, so an appended update is what it sees. The old line becomes dead; a shard whose dead
//!   lines (superseded, blank) outnumber its live ones, with at least [`MIN_DEAD_LINES`] of
//!   them, is compacted. A delete rewrites the shard without the key: proxywhirl has no
//!   tombstone, so a rewrite is the only delete it sees.
//! - **Rewrites are atomic.** Compaction, delete, eviction and expiry cleanup write
//!   `shard_NN.jsonl.tmp`, fsync it, rename it over the shard and fsync the directory. Right
//!   before the rename, under the shard's exclusive lock, the shard file's device, inode, length
//!   and mtime are checked again: a writer that does not take our lock (proxywhirl renames its
//!   own rewrite over the shard) may have changed it since we read it, and then the rewrite is
//!   done again from the file as it now is, instead of renaming over it. A put is not fsynced:
//!   when it returns, its line has been written (`write(2)` completed), so it survives a crash
//!   of the process, not necessarily a power loss.
//! - **Locks.** Every change to a shard file is made under an exclusive `flock` on the shard
//!   file itself, every read of it (except a single indexed line) under a shared one: the locks
//!   proxywhirl's `portalocker` takes, so a proxywhirl reader never sees half of our append.
//!   After taking a lock, the holder checks that the locked file is still the one at the path
//!   (same device and inode) and retries otherwise, since a rename may have replaced it while
//!   it waited. In this process, each shard has its own mutex: different shards proceed in
//!   parallel, and no lock is held across shards.
//! - **Change detection.** Before each operation a shard `stat`s its file and compares device,
//!   inode, length and mtime with what it indexed. Unchanged: nothing to do. Same inode, longer:
//!   another process appended; only the tail is parsed. Anything else: the file was replaced
//!   (a rewrite, proxywhirl's whole-shard write, a clear) and is indexed again. So processes
//!   sharing a directory see each other's writes without reopening.
//! - **Damage** never fails the tier: blank, undecodable and non-entry lines are skipped, an
//!   object with a key but broken fields is served as a corrupt entry, a token no key opens is
//!   a corrupt entry, and all of it is counted ([`JsonlTier::damage`]).
//! - **Unreadable is not garbage** (the rule of the crate docs, "Unreadable entries"). A line
//!   that is not JSON or not an entry, an entry with broken fields, an entry whose token no key
//!   of the ring opens (or is not hex): no lookup, put of another key, eviction, expiry
//!   cleanup, compaction or rewrite for another key removes or changes it. Every rewrite carries
//!   such lines over verbatim (content and terminator) in their place; eviction never picks
//!   such an entry; expiry cleanup leaves it even when its `expires_at` is past (it tries the
//!   tokens of each expired candidate against the ring first, dropping the plaintext at once);
//!   they are not dead lines, so compaction does not count them. Each skip is counted
//!   ([`CacheTier::unreadable_skipped`]). Only a put of the same key (its line is superseded),
//!   a delete of that key, a clear, or [`CacheTier::remove_unreadable`] removes one. Blank
//!   lines hold nothing: rewrites drop them.
//! - **Lax reading.** A line reads as proxywhirl reads it (`pw_cache_model::lax`): integers as
//!   `"5"` or `5.0`, booleans as `"yes"` or `1`, timestamps as Unix seconds or milliseconds.
//!   A value outside our model that proxywhirl reads reads as the nearest legal value, reported
//!   by a warning naming the key and the field (never a credential): a count outside `u64`
//!   (`access_count: -1`, an integer literal `2**64 + 5`), a lone surrogate escape (U+FFFD).
//!   What `json.loads` reads but serde_json does not (lone surrogates, integers beyond 64 bits,
//!   `NaN`) is read from a rewritten copy of the line, never from a changed file, and only
//!   after the strict parse failed; `NaN` or `Infinity` in a member makes an unreadable entry of
//!   the key, as pydantic refuses them. Credentials are read as proxywhirl reads them too: hex
//!   with whitespace between bytes (`bytes.fromhex`), tokens as `cryptography` 51 reads them,
//!   and a plaintext `username` / `password` member when the encrypted one is false (reported
//!   once per line; a put writes it encrypted).
//! - **Misplaced keys** (found in a shard other than their md5 shard) are served; the md5 shard
//!   wins when both hold the key; a put or delete of the key removes the misplaced copies.
//!   A misplaced key is found when the shard holding it is read (at open, or when that shard
//!   is next used), not by a get that only looks at the key's own shard.
//!
//! # Eviction: an approximation
//!
//! With `max_entries` set, a put of a new key first evicts, across all shards, the entries that
//! go first under the policy until there is room. Unreadable entries are never evicted: a
//! victim whose tokens no key opens is found out when its shard is rewritten, kept, and another
//! victim is taken; a tier whose other entries are all gone may so stay above `max_entries`
//! (one warning says so, until it is back within the bound). The order uses
//! what this process knows: **LRU** the later of the stored `last_accessed` and this process's
//! last put or get hit; **LFU** the larger of the stored `access_count` and this process's
//! count (each hit adds one), ties by recency; **FIFO** the stored `fetch_time` of entries
//! found on disk, or the time this process first put the key. Gets made by other processes
//! are not seen (they do not write). The bound always holds after a put; with several writing
//! processes, each keeps it as it sees the directory.
//!
//! Evicting costs a rewrite of each shard holding a victim, so a put that needs room evicts a
//! batch: the entries needed plus `max_entries / 64` more ([`EVICTION_BATCH_DIVISOR`]). The
//! size never exceeds `max_entries` (unreadable entries aside); right after a batch it is up to
//! 1/64 below it.
//! [`JsonlTier::evictions`] counts evicted entries.
//!
//! # Platform
//!
//! Unix: positioned reads, inode identity and `flock`.
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html

mod cleanup;
mod damage;
mod eviction;
mod line;
mod read;
mod shard;
mod write;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use pw_cache_crypto::{KeyRing, Trust, private_fs, trust};
use pw_cache_model::{CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, OffsetDateTime};

pub use damage::JsonlDamage;
pub use line::{decode_line, encode_line, hex_decode, hex_encode};

use crate::error::TierError;
#[cfg(doc)]
use crate::tier::CacheTier;
use crate::tier::{FailureMark, TierHealth};
use shard::Shard;
// The unit tests (`tests.rs`, `lax_tests.rs`, `unreadable_tests.rs`: `use super::*`) name these
// as they did when all of this was one file.
#[cfg(test)]
use {
    crate::tier::CacheTier,
    pw_cache_model::HealthStatus,
    std::collections::{HashMap, HashSet},
};

/// A put at capacity evicts `max_entries / EVICTION_BATCH_DIVISOR` entries beyond the ones it
/// needs, so that shard rewrites are amortized over that many puts.
pub const EVICTION_BATCH_DIVISOR: u64 = 64;

/// A shard is compacted when its dead lines (older lines of updated keys, blank lines) are
/// more than its live ones and at least this many. Unreadable lines are not dead.
pub const MIN_DEAD_LINES: u64 = 64;

/// How many shard files a JSONL directory has (the reference's default `num_shards`).
pub const NUM_SHARDS: usize = 16;

/// The shard of `key`: `int(hashlib.md5(key.encode()).hexdigest(), 16) % 16`.
pub fn shard_of(key: &str) -> usize {
    let digest = u128::from_be_bytes(md5::compute(key.as_bytes()).0);
    // The remainder is below 16: the cast cannot truncate.
    (digest % NUM_SHARDS as u128) as usize
}

/// The file name of shard `shard`: `shard_07.jsonl`.
pub fn shard_file_name(shard: usize) -> String {
    format!("shard_{shard:02}.jsonl")
}

/// The JSONL tier (L2): see the module docs for the format and the design.
#[derive(Debug)]
pub struct JsonlTier {
    dir: PathBuf,
    max_entries: Option<u64>,
    policy: EvictionPolicy,
    ring: Arc<KeyRing>,
    shards: Vec<Mutex<Shard>>,
    /// Per shard, how many misplaced keys it held when last used (read without its mutex).
    foreign: Vec<AtomicUsize>,
    stray_temp_files: AtomicU64,
    evictions: AtomicU64,
    /// [`CacheTier::unreadable_skipped`].
    unreadable_skipped: AtomicU64,
    /// Whether the warning that unreadable entries keep the tier above its bound was given
    /// (cleared when the tier is back within it).
    over_bound_warned: AtomicBool,
    /// Last use stamp handed out (Unix µs, strictly increasing): orders this process's uses.
    clock: AtomicI64,
    health: TierHealth,
}

impl JsonlTier {
    /// Opens (creating it if missing) the shard directory `dir` and indexes every shard.
    /// Entries hold at most `config.max_entries` under `config.eviction_policy`; credentials are
    /// encrypted with `ring`'s current key and decrypted with any of its keys. Stray
    /// `shard_NN.jsonl.tmp` files of an interrupted rewrite are removed.
    ///
    /// Errors name the path: a directory that cannot be created or read, a shard file that
    /// cannot be read, a directory that cannot be trusted under [`Trust::Strict`]
    /// ([`TierError::Untrusted`]; see [`JsonlTier::open_trusting`]).
    pub fn open(dir: impl AsRef<Path>, config: &CacheTierConfig, ring: Arc<KeyRing>) -> Result<Self, TierError> {
        Self::open_trusting(dir, config, ring, Trust::Strict)
    }

    /// [`JsonlTier::open`], the directory (created if missing) checked under `trust` before
    /// anything in it is read ([`trust::check_dir`]).
    pub fn open_trusting(
        dir: impl AsRef<Path>,
        config: &CacheTierConfig,
        ring: Arc<KeyRing>,
        trust: Trust,
    ) -> Result<Self, TierError> {
        let dir = dir.as_ref().to_path_buf();
        private_fs::create_dir_all(&dir).map_err(TierError::io("create cache directory", &dir))?;
        trust::check_dir(&dir, trust)?;
        fs::read_dir(&dir).map_err(TierError::io("read cache directory", &dir))?;
        let tier = Self {
            shards: (0..NUM_SHARDS as u8)
                .map(|id| Mutex::new(Shard::new(&dir, id)))
                .collect(),
            foreign: (0..NUM_SHARDS).map(|_| AtomicUsize::new(0)).collect(),
            dir,
            max_entries: config.max_entries,
            policy: config.eviction_policy,
            ring,
            stray_temp_files: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            unreadable_skipped: AtomicU64::new(0),
            over_bound_warned: AtomicBool::new(false),
            clock: AtomicI64::new(0),
            health: TierHealth::new(),
        };
        for id in 0..NUM_SHARDS {
            tier.with_shard(id, |sh| {
                sh.sync()?;
                if sh.tmp_path().exists() {
                    // Under the shard's lock: no writer of ours is using the file now.
                    let _guard = sh.lock_exclusive()?;
                    match fs::remove_file(sh.tmp_path()) {
                        Ok(()) => {
                            tier.stray_temp_files.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(TierError::io("remove stray temporary file", sh.tmp_path())(e)),
                    }
                }
                Ok(())
            })?;
        }
        Ok(tier)
    }

    /// The shard directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of shard `shard`'s file (`shard` below [`NUM_SHARDS`]).
    pub fn shard_path(&self, shard: usize) -> PathBuf {
        self.dir.join(shard_file_name(shard))
    }

    /// Damage seen in the shard files, as this tier last read them (see [`JsonlDamage`]).
    pub fn damage(&self) -> JsonlDamage {
        let mut d = JsonlDamage {
            stray_temp_files: self.stray_temp_files.load(Ordering::Relaxed),
            ..JsonlDamage::default()
        };
        for id in 0..NUM_SHARDS {
            self.with_shard(id, |sh| sh.add_damage(&mut d));
        }
        d
    }

    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Lines in the shard files, as last read, that are not the live line of a key: older
    /// lines of updated keys and blank lines, which compaction drops, and the skipped lines that
    /// cannot be read (not JSON, not an entry: [`JsonlDamage::skipped_lines`] less the blank
    /// ones), which every rewrite keeps in place. So after a compaction this is the count of
    /// those unreadable lines; they never trigger one.
    pub fn dead_lines(&self) -> u64 {
        (0..NUM_SHARDS)
            .map(|id| self.with_shard(id, |sh| sh.dead_lines() + sh.unreadable_lines()))
            .sum()
    }

    /// Counts unreadable entries or lines left in place.
    fn skipped(&self, n: u64) {
        if n > 0 {
            self.unreadable_skipped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Runs `f` on shard `id` under its mutex, then publishes its misplaced-key count.
    fn with_shard<R>(&self, id: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut guard = self.lock_shard(id);
        let out = f(&mut guard);
        self.foreign[id].store(guard.foreign(), Ordering::Relaxed);
        out
    }

    fn lock_shard(&self, id: usize) -> MutexGuard<'_, Shard> {
        match self.shards[id].lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic interrupted an operation: trust only a fresh read of the file.
                self.shards[id].clear_poison();
                let mut guard = poisoned.into_inner();
                guard.invalidate();
                guard
            }
        }
    }

    /// A use stamp: the wall clock in Unix µs, made strictly increasing so that two uses in a
    /// row are ordered even within one microsecond.
    fn tick(&self) -> i64 {
        let now = now_micros();
        let prev = self
            .clock
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |prev| {
                Some(now.max(prev.saturating_add(1)))
            })
            .unwrap_or(now);
        now.max(prev.saturating_add(1))
    }

    /// Whether any shard held misplaced keys when last used.
    fn any_misplaced(&self) -> bool {
        self.foreign.iter().any(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Shards other than `home` that may hold `key` misplaced, highest first (the reference's
    /// index keeps the highest shard that holds a key).
    fn misplaced_candidates(&self, home: usize) -> impl Iterator<Item = usize> + '_ {
        (0..NUM_SHARDS)
            .rev()
            .filter(move |&id| id != home && self.foreign[id].load(Ordering::Relaxed) > 0)
    }

    /// Brings every shard up to date.
    fn sync_all(&self) -> Result<(), TierError> {
        (0..NUM_SHARDS).try_for_each(|id| self.with_shard(id, |sh| sh.sync()))
    }

    fn probe_dir(&self) -> Result<(), TierError> {
        use std::io::Write;
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let probe = self.dir.join(format!(
            ".pw-cache-probe-{}-{}",
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = private_fs::open_options()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|mut f| {
                f.write_all(b"probe\n")?;
                f.sync_all()
            });
        // Remove what was created even if writing failed.
        let removed = fs::remove_file(&probe);
        written.map_err(TierError::io("write probe file", &probe))?;
        removed.map_err(TierError::io("remove probe file", &probe))?;
        for id in 0..NUM_SHARDS {
            let path = self.shard_path(id);
            match private_fs::open_regular(fs::OpenOptions::new().append(true), &path) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(TierError::io("open shard for appending", path)(e)),
            }
        }
        Ok(())
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The tier's operations; [`CacheTier`](crate::CacheTier) comes with them, their outcomes
/// recorded in the tier's health (`crate::backend`). JSONL has no credential rotation, health
/// detail or replay of its own ([`CacheTier`](crate::CacheTier)'s defaults: the entry read and
/// put back; read whole; delete and clear, a shard line keeping no write time), and keeps
/// nothing in memory for later (no flush; closing has nothing to release).
impl crate::backend::TierBackend for JsonlTier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L2
    }

    fn health(&self) -> &TierHealth {
        &self.health
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.lookup(key, true)
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.lookup(key, false)
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.store(entry)
    }

    /// The check, `still_below` and the append under the home shard's exclusive lock.
    fn put_if_absent_with(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Option<Result<bool, TierError>> {
        Some(self.store_if_absent(entry, still_below))
    }

    /// Each record is read, applied and appended under its shard's exclusive lock, so a put
    /// or delete by another process in between is never overwritten by the older line.
    fn record_accesses(&self, records: &[pw_cache_model::AccessRecord]) -> Result<usize, TierError> {
        self.append_accesses(records)
    }

    /// Read, checked, and appended marked (or removed) under the shard's exclusive lock, so a
    /// put or delete by another process in between is never overwritten.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.mark_entry_failed(key, evict_at)
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.remove(key)
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.remove_all()
    }

    fn size(&self) -> Result<usize, TierError> {
        self.count_entries()
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.all_keys()
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.holds(key)
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.remove_expired(now)
    }

    fn evictions(&self) -> u64 {
        JsonlTier::evictions(self)
    }

    /// Counted: each unreadable entry an eviction passed over (once per put that evicts), each
    /// unreadable entry an expiry cleanup left although its `expires_at` is past (once per
    /// cleanup), and each unreadable line that is no entry (not JSON, not an entry) that a
    /// rewrite of its shard carried over (compaction, delete, eviction, cleanup).
    fn unreadable_skipped(&self) -> u64 {
        self.unreadable_skipped.load(Ordering::Relaxed)
    }

    /// Tokens read from the lines the index points at, a line per shard in turn (so spread over
    /// the shards), without decrypting them; lines whose fields are broken are not sampled.
    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.sample_tokens(limit)
    }

    /// Removes the entries whose line has broken fields or a token that is not hex or that no
    /// key of the ring opens, and the lines that are not JSON or not an entry; each shard in one
    /// atomic rewrite. Returns how many entries and lines it removed.
    fn remove_unreadable(&self) -> Option<Result<usize, TierError>> {
        Some(self.drop_unreadable())
    }

    fn compact(&self) -> Option<Result<usize, TierError>> {
        Some(self.compact_shards())
    }

    fn close(&self) -> Result<(), TierError> {
        Ok(())
    }

    /// Creates, writes, syncs and removes a file in the directory, then opens every existing
    /// shard for appending: what a put needs. Nothing of the shards changes.
    fn probe(&self) -> Result<(), TierError> {
        self.probe_dir()
    }
}

#[cfg(test)]
mod lax_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unreadable_tests;
