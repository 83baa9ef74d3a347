//! L2: the JSONL tier, on-disk compatible both ways with proxywhirl 0.3.3's `JsonlCacheTier`.
//!
//! The format (specified in `docs/formats.md`): 16 files `shard_00.jsonl` ..
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

mod line;
mod shard;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use pw_cache_crypto::{KeyRing, Trust, private_fs, trust};
use pw_cache_model::{CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, HealthStatus, OffsetDateTime};

pub use line::{decode_line, encode_line, hex_decode, hex_encode};

use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, TierHealth};
use line::Classified;
use shard::{Found, Rank, Shard, Verdict, micros};

/// A put at capacity evicts `max_entries / EVICTION_BATCH_DIVISOR` entries beyond the ones it
/// needs, so that shard rewrites are amortized over that many puts.
pub const EVICTION_BATCH_DIVISOR: u64 = 64;

/// A shard is compacted when its dead lines (older lines of updated keys, blank lines) are
/// more than its live ones and at least this many. Unreadable lines are not dead.
pub const MIN_DEAD_LINES: u64 = 64;

/// How many rounds of victims a put at capacity tries when victims turn out unreadable, before
/// it stores its entry above the bound.
const MAX_EVICTION_ROUNDS: usize = 8;

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

/// Damage found in the shard files, as last read, plus what the tier cleaned up.
///
/// Counts describe the files as this tier last read them, except
/// [`JsonlDamage::stray_temp_files`], which counts removals since the tier opened. Damaged lines
/// stay where they are (see the module docs: rewrites carry them over), so their counts go down
/// only when the damage itself goes: a put or delete of a damaged entry's key, a clear, or
/// [`CacheTier::remove_unreadable`]. Blank lines, which hold nothing, are dropped by rewrites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonlDamage {
    /// Lines with nothing but whitespace (skipped, as the reference does; dropped by rewrites).
    pub blank_lines: u64,
    /// Lines that are not JSON: cut short, garbage, not UTF-8; and lines longer than
    /// [`pw_cache_model::limits::MAX_LINE_BYTES`], which are not parsed nor held in memory
    /// (skipped, kept in place).
    pub undecodable_lines: u64,
    /// Lines that are JSON but not an object with a string `key` (`42`, `null`, `"x"`):
    /// skipped and kept in place (proxywhirl's constructor crashes on `42` and `null`).
    pub non_entry_lines: u64,
    /// Keys whose live line is an object with that key but not a valid entry (a missing field,
    /// a bad timestamp): held, and reported as corrupt by a get.
    pub invalid_entries: u64,
    /// Keys found in a shard other than their md5 shard: served from there.
    pub misplaced_keys: u64,
    /// Keys whose credentials could not be read (no key of the ring opens the token, or it is
    /// not hex): reported as corrupt, until the key is written again or deleted, or its shard is
    /// read again from scratch. Counted once something tried the tokens (a get, eviction, expiry
    /// cleanup), not when the tier opens.
    pub corrupt_entries: u64,
    /// `shard_NN.jsonl.tmp` files left by an interrupted rewrite, removed when the tier opened.
    pub stray_temp_files: u64,
}

impl JsonlDamage {
    /// Lines skipped: blank, undecodable and non-entry.
    pub fn skipped_lines(&self) -> u64 {
        self.blank_lines + self.undecodable_lines + self.non_entry_lines
    }

    /// Whether nothing was found damaged or out of place.
    pub fn is_clean(&self) -> bool {
        *self == JsonlDamage::default()
    }
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

    /// Rewrites every shard that has dead lines, keeping its live lines and its unreadable
    /// lines (verbatim, in place); how many shards were rewritten. (Compaction also happens by
    /// itself as dead lines accumulate.)
    pub fn compact(&self) -> Result<usize, TierError> {
        let result = (|| {
            let mut rewritten = 0;
            for id in 0..NUM_SHARDS {
                rewritten += self.with_shard(id, |sh| {
                    sh.sync()?;
                    if sh.dead_lines() == 0 {
                        return Ok::<_, TierError>(0);
                    }
                    let guard = sh.lock_exclusive()?;
                    let (done, _guard) = sh.rewrite(guard, false, |_, _, _| Verdict::Keep)?;
                    self.skipped(done.carried_stray);
                    Ok(1)
                })?;
            }
            Ok(rewritten)
        })();
        self.health.observe(result)
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

    /// The entry under `key`; `used` records the read as a use (for eviction).
    fn get_inner(&self, key: &str, used: bool) -> Result<Option<CacheEntry>, TierError> {
        let home = shard_of(key);
        // A second attempt only if the index pointed at a line that is not the key's.
        for attempt in 0..2 {
            let now = used.then(|| self.tick());
            let mut found = None;
            for id in std::iter::once(home).chain(self.misplaced_candidates(home)) {
                if let Some(f) = self.with_shard(id, |sh| sh.sync().map(|()| sh.find(key, now)))? {
                    found = Some((id, f));
                    break;
                }
            }
            let Some((id, found)) = found else {
                return Ok(None);
            };
            let (file, offset, len, prior) = match found {
                Found::Invalid(reason) => {
                    return Err(TierError::Corrupt {
                        key: key.to_owned(),
                        reason,
                    });
                }
                Found::Line {
                    file,
                    offset,
                    len,
                    prior,
                } => (file, offset, len, prior),
            };
            let mut buf = vec![0u8; len];
            std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset)
                .map_err(|e| TierError::io("read shard", self.shard_path(id))(e))?;
            let parsed = match line::classify(&buf) {
                Classified::Entry(parsed) if parsed.key == key => parsed,
                _ if attempt == 0 => {
                    self.with_shard(id, |sh| sh.invalidate());
                    continue;
                }
                _ => {
                    return Err(TierError::Corrupt {
                        key: key.to_owned(),
                        reason: format!(
                            "the indexed line of {} is not this key's",
                            self.shard_path(id).display()
                        ),
                    });
                }
            };
            return match line::into_entry(*parsed, &self.ring) {
                Ok(entry) => Ok(Some(entry)),
                Err(e) => {
                    // Reported once per line (the caller counts every lookup that fails).
                    if e.is_corrupt_entry() && self.with_shard(id, |sh| sh.mark_corrupt(key, offset, prior)) {
                        tracing::warn!(key, shard = id, error = %e, "unreadable entry in JSONL shard");
                    }
                    Err(e)
                }
            };
        }
        Ok(None)
    }

    fn put_inner(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.write_entry(entry, None).map(|_| ())
    }

    /// [`CacheTier::put_if_absent_with`]: the check, `still_below` and the append under the
    /// home shard's exclusive lock (which first catches up with other processes' writes).
    fn put_if_absent_inner(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Result<bool, TierError> {
        self.write_entry(entry, Some(still_below))
    }

    /// Appends `entry`'s line to its home shard, under the shard's exclusive lock; with
    /// `only_if`, only when no shard holds the key and `only_if()` (called under that lock)
    /// says so. Whether it wrote.
    fn write_entry(
        &self,
        entry: &CacheEntry,
        mut only_if: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<bool, TierError> {
        if entry.key.is_empty() {
            return Err(TierError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        // Held in any shard (a misplaced line too): nothing to do.
        if only_if.is_some() && self.contains_inner(&entry.key)? {
            return Ok(false);
        }
        let line = encode_line(entry, &self.ring)?;
        if let Some(max) = self.max_entries {
            self.make_room(&entry.key, max)?;
        }
        let home = shard_of(&entry.key);
        let now = self.tick();
        let rank = Rank {
            used: now,
            hits: entry.access_count,
            born: now,
        };
        let expires = micros(entry.expires_at);
        let creds = has_credentials(entry);
        let wrote = self.with_shard(home, |sh| {
            let guard = sh.lock_exclusive()?;
            if let Some(only_if) = only_if.as_mut()
                && (sh.find(&entry.key, None).is_some() || !only_if())
            {
                return Ok::<_, TierError>(false);
            }
            sh.append(&guard, &entry.key, line.as_bytes(), creds, rank, expires)?;
            if sh.needs_compaction() {
                match sh.rewrite(guard, false, |_, _, _| Verdict::Keep) {
                    Ok((done, _guard)) => self.skipped(done.carried_stray),
                    // The write itself is done; the next write tries again.
                    Err(e) => tracing::warn!(shard = home, error = %e, "JSONL shard compaction failed"),
                }
            }
            Ok(true)
        })?;
        if wrote {
            for id in self.misplaced_candidates(home).collect::<Vec<_>>() {
                self.remove_from(id, &entry.key)?;
            }
        }
        Ok(wrote)
    }

    fn record_accesses_inner(&self, records: &[pw_cache_model::AccessRecord]) -> Result<usize, TierError> {
        let mut changed = 0;
        for record in records {
            let key = record.key.as_str();
            let home = shard_of(key);
            let applied = self.with_shard(home, |sh| {
                let guard = sh.lock_exclusive()?;
                let Some(Found::Line { file, offset, len, .. }) = sh.find(key, None) else {
                    return Ok::<_, TierError>(false);
                };
                let mut buf = vec![0u8; len];
                std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset)
                    .map_err(|e| TierError::io("read shard", self.shard_path(home))(e))?;
                let mut entry = match line::classify(&buf) {
                    Classified::Entry(parsed) if parsed.key == key => match line::into_entry(*parsed, &self.ring) {
                        Ok(entry) => entry,
                        // Unreadable: a lookup finds and counts it; nothing to record.
                        Err(_) => return Ok(false),
                    },
                    _ => return Ok(false),
                };
                if !record.apply_to(&mut entry) {
                    return Ok(false);
                }
                let line = encode_line(&entry, &self.ring)?;
                let now = self.tick();
                let rank = Rank {
                    used: now,
                    hits: entry.access_count,
                    born: now,
                };
                let creds = has_credentials(&entry);
                sh.append(&guard, key, line.as_bytes(), creds, rank, micros(entry.expires_at))?;
                Ok(true)
            })?;
            changed += usize::from(applied);
        }
        Ok(changed)
    }

    /// [`CacheTier::mark_failure`]: in the shard holding `key` (its home shard, else a shard
    /// holding it misplaced), under that shard's exclusive lock, which first catches up with
    /// other processes' writes: the live line is read and checked readable, then a marked line
    /// is appended (or, at `evict_at`, the shard rewritten without the key). The line appended
    /// is the line read with the two fields changed (credentials encrypted again, their values
    /// unchanged); the key's place in the eviction order does not move (a mark is not a use).
    fn mark_failure_inner(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let home = shard_of(key);
        for id in std::iter::once(home).chain(self.misplaced_candidates(home)) {
            // A second attempt only if the index pointed at a line that is not the key's.
            for attempt in 0..2 {
                let done = self.with_shard(id, |sh| {
                    let guard = sh.lock_exclusive()?;
                    let (file, offset, len) = match sh.find(key, None) {
                        None => return Ok(None),
                        Some(Found::Invalid(reason)) => {
                            return Err(TierError::Corrupt {
                                key: key.to_owned(),
                                reason,
                            });
                        }
                        Some(Found::Line { file, offset, len, .. }) => (file, offset, len),
                    };
                    let mut buf = vec![0u8; len];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset)
                        .map_err(|e| TierError::io("read shard", self.shard_path(id))(e))?;
                    let parsed = match line::classify(&buf) {
                        Classified::Entry(parsed) if parsed.key == key => parsed,
                        _ if attempt == 0 => {
                            sh.invalidate();
                            return Ok(Some(None));
                        }
                        _ => {
                            return Err(TierError::Corrupt {
                                key: key.to_owned(),
                                reason: format!(
                                    "the indexed line of {} is not this key's",
                                    self.shard_path(id).display()
                                ),
                            });
                        }
                    };
                    // Unreadable: left as it is, reported as a lookup reports it.
                    let mut entry = line::into_entry(*parsed, &self.ring)?;
                    let failure_count = entry.failure_count.saturating_add(1);
                    if evict_at.is_some_and(|at| failure_count >= at) {
                        let (rewritten, _guard) =
                            sh.rewrite(
                                guard,
                                false,
                                |k, _, _| {
                                    if k == key { Verdict::Remove } else { Verdict::Keep }
                                },
                            )?;
                        self.skipped(rewritten.carried_stray);
                        return Ok(Some(Some(FailureMark::Evicted { failure_count })));
                    }
                    entry.failure_count = failure_count;
                    entry.health_status = HealthStatus::Unhealthy;
                    let marked = encode_line(&entry, &self.ring)?;
                    // Not a use: the key's rank stays what it was (`after` keeps the prior one's).
                    let rank = Rank {
                        used: micros(entry.last_accessed),
                        hits: entry.access_count,
                        born: self.tick(),
                    };
                    let creds = has_credentials(&entry);
                    sh.append(&guard, key, marked.as_bytes(), creds, rank, micros(entry.expires_at))?;
                    Ok(Some(Some(FailureMark::Marked { failure_count })))
                })?;
                match done {
                    // Not in this shard.
                    None => break,
                    Some(Some(mark)) => {
                        if matches!(mark, FailureMark::Evicted { .. }) {
                            // As a delete: no misplaced copy may surface once the key is gone.
                            for other in self.misplaced_candidates(home).filter(|&o| o != id).collect::<Vec<_>>() {
                                self.remove_from(other, key)?;
                            }
                        }
                        return Ok(mark);
                    }
                    // The index was behind: read the shard again.
                    Some(None) => {}
                }
            }
        }
        Ok(FailureMark::Absent)
    }

    /// Removes `key` from shard `id` (a rewrite that keeps every other line) if it is there.
    fn remove_from(&self, id: usize, key: &str) -> Result<bool, TierError> {
        self.with_shard(id, |sh| {
            sh.sync()?;
            if !sh.contains(key) {
                return Ok(false);
            }
            let guard = sh.lock_exclusive()?;
            if !sh.contains(key) {
                return Ok(false);
            }
            let (done, _guard) = sh.rewrite(
                guard,
                false,
                |k, _, _| {
                    if k == key { Verdict::Remove } else { Verdict::Keep }
                },
            )?;
            self.skipped(done.carried_stray);
            Ok(!done.removed.is_empty())
        })
    }

    fn delete_inner(&self, key: &str) -> Result<bool, TierError> {
        let home = shard_of(key);
        let mut removed = self.remove_from(home, key)?;
        for id in self.misplaced_candidates(home).collect::<Vec<_>>() {
            removed |= self.remove_from(id, key)?;
        }
        Ok(removed)
    }

    fn contains_inner(&self, key: &str) -> Result<bool, TierError> {
        let home = shard_of(key);
        for id in std::iter::once(home).chain(self.misplaced_candidates(home)) {
            if self.with_shard(id, |sh| sh.sync().map(|()| sh.contains(key)))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Brings every shard up to date.
    fn sync_all(&self) -> Result<(), TierError> {
        (0..NUM_SHARDS).try_for_each(|id| self.with_shard(id, |sh| sh.sync()))
    }

    /// Every key, each once.
    fn keys_inner(&self) -> Result<Vec<String>, TierError> {
        self.sync_all()?;
        let mut keys = Vec::new();
        for id in 0..NUM_SHARDS {
            self.with_shard(id, |sh| keys.extend(sh.keys().cloned()));
        }
        if self.any_misplaced() {
            let mut seen = HashSet::with_capacity(keys.len());
            keys.retain(|k| seen.insert(k.clone()));
        }
        Ok(keys)
    }

    fn probe_inner(&self) -> Result<(), TierError> {
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

    fn size_inner(&self) -> Result<usize, TierError> {
        self.sync_all()?;
        if self.any_misplaced() {
            return self.keys_inner().map(|k| k.len());
        }
        Ok((0..NUM_SHARDS).map(|id| self.with_shard(id, |sh| sh.len())).sum())
    }

    /// Evicts what must go for a new `key` to fit under `max` entries. Unreadable entries are
    /// never taken: those known are left out of the choice, and a victim whose tokens no key
    /// opens (found out by its shard's rewrite) is kept and marked, and another round chooses
    /// again. When nothing readable is left to evict, the tier stays above `max` (one warning).
    fn make_room(&self, key: &str, max: u64) -> Result<(), TierError> {
        if self.contains_inner(key)? {
            return Ok(());
        }
        // Unreadable entries this put passed over, each counted once.
        let mut passed: HashSet<(usize, String)> = HashSet::new();
        for _ in 0..MAX_EVICTION_ROUNDS {
            let total = self.size_inner()? as u64;
            if total < max {
                self.over_bound_warned.store(false, Ordering::Relaxed);
                return Ok(());
            }
            // Evict a batch: each eviction rewrites the victims' shards, so making room for one
            // entry at a time would rewrite shards on every put at capacity. A batch of 1/64 of
            // the bound amortizes that to a rewrite per shard every `max / 64` puts.
            let batch = max / EVICTION_BATCH_DIVISOR;
            let need = usize::try_from((total - max + 1).saturating_add(batch).min(total)).unwrap_or(usize::MAX);
            let mut candidates = Vec::new();
            for id in 0..NUM_SHARDS {
                let (found, unreadable) = self.with_shard(id, |sh| sh.victims(self.policy, key, need));
                candidates.extend(found.into_iter().map(|(p, k)| (p, k, id)));
                passed.extend(unreadable.into_iter().map(|k| (id, k)));
            }
            if candidates.is_empty() {
                break;
            }
            candidates.sort_unstable();
            candidates.truncate(need);
            let mut by_shard: HashMap<usize, HashSet<String>> = HashMap::new();
            for (_, victim, id) in candidates {
                by_shard.entry(id).or_default().insert(victim);
            }
            for (id, victims) in by_shard {
                let done = self.with_shard(id, |sh| {
                    let guard = sh.lock_exclusive()?;
                    let (done, _guard) = sh.rewrite(guard, false, |k, slot, line| {
                        if !victims.contains(k) {
                            Verdict::Keep
                        } else if self.readable(k, slot, line) {
                            Verdict::Remove
                        } else {
                            Verdict::KeepUnreadable
                        }
                    })?;
                    Ok::<_, TierError>(done)
                })?;
                self.skipped(done.carried_stray);
                passed.extend(done.kept_unreadable.into_iter().map(|k| (id, k)));
                self.evictions.fetch_add(done.removed.len() as u64, Ordering::Relaxed);
                tracing::debug!(shard = id, evicted = done.removed.len(), "JSONL tier evicted entries");
            }
        }
        self.skipped(passed.len() as u64);
        if self.size_inner()? as u64 >= max {
            if !self.over_bound_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_entries = max,
                    unreadable = passed.len(),
                    "JSONL tier above max_entries: what is left to evict cannot be read (unreadable \
                     entries are never evicted; CacheTier::remove_unreadable removes them)"
                );
            }
        } else {
            self.over_bound_warned.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the live line `line` of `key` (its slot `slot`) can be read: not known to be
    /// unreadable, and each credential token opens with a key of the ring (the plaintext is
    /// dropped, zeroized, at once). Only lines with tokens not yet tried (written by another
    /// process, or before this tier opened) are parsed again.
    fn readable(&self, key: &str, slot: &shard::Slot, line: &[u8]) -> bool {
        !slot.is_unreadable() && (!slot.has_untried_tokens() || line::credentials_open(line, key, &self.ring))
    }

    fn clear_inner(&self) -> Result<usize, TierError> {
        let mut removed: Vec<String> = Vec::new();
        for id in 0..NUM_SHARDS {
            removed.extend(self.with_shard(id, |sh| sh.remove_file())?);
        }
        shard::sync_dir(&self.dir)?;
        let distinct: HashSet<&String> = removed.iter().collect();
        Ok(distinct.len())
    }

    /// Removes the expired entries; an entry that cannot be read is left, whatever its
    /// `expires_at` field says: an expired candidate with credential tokens is kept (and marked)
    /// unless its tokens open with the ring.
    fn cleanup_inner(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = micros(now);
        let mut removed = HashSet::new();
        for id in 0..NUM_SHARDS {
            let gone = self.with_shard(id, |sh| {
                sh.sync()?;
                let (any, unreadable) = sh.expiry_scan(now);
                self.skipped(unreadable);
                if !any {
                    return Ok(Vec::new());
                }
                let guard = sh.lock_exclusive()?;
                let (done, _guard) = sh.rewrite(guard, false, |k, slot, line| {
                    if !slot.expired_at(now) {
                        Verdict::Keep
                    } else if self.readable(k, slot, line) {
                        Verdict::Remove
                    } else {
                        Verdict::KeepUnreadable
                    }
                })?;
                self.skipped(done.carried_stray + done.kept_unreadable.len() as u64);
                Ok::<_, TierError>(done.removed)
            })?;
            removed.extend(gone);
        }
        Ok(removed.len())
    }

    /// [`CacheTier::credential_sample`]: tokens of lines that hold some, a line per shard in
    /// turn, read from the lines the index points at (no shard is read whole).
    fn credential_sample_inner(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        let mut tokens = Vec::new();
        if limit == 0 {
            return Ok(tokens);
        }
        self.sync_all()?;
        let lines: Vec<_> = (0..NUM_SHARDS)
            .map(|id| self.with_shard(id, |sh| sh.token_lines(limit)))
            .collect();
        let rounds = lines.iter().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            for (id, shard_lines) in lines.iter().enumerate() {
                let Some((file, offset, len)) = shard_lines.get(round) else {
                    continue;
                };
                let mut buf = vec![0u8; *len];
                std::os::unix::fs::FileExt::read_exact_at(&**file, &mut buf, *offset)
                    .map_err(|e| TierError::io("read shard", self.shard_path(id))(e))?;
                for token in line::stored_tokens(&buf) {
                    if tokens.len() == limit {
                        return Ok(tokens);
                    }
                    tokens.push(token);
                }
            }
        }
        Ok(tokens)
    }

    /// [`CacheTier::remove_unreadable`]: per shard, one rewrite without the entries that cannot
    /// be read (broken fields, a token that is not hex or that no key opens) and without the
    /// stray lines (not JSON, not an entry).
    fn remove_unreadable_inner(&self) -> Result<usize, TierError> {
        let mut removed = 0;
        for id in 0..NUM_SHARDS {
            removed += self.with_shard(id, |sh| {
                sh.sync()?;
                if !sh.exists() {
                    return Ok::<_, TierError>(0);
                }
                let guard = sh.lock_exclusive()?;
                let (done, _guard) = sh.rewrite(guard, true, |k, slot, line| {
                    if self.readable(k, slot, line) {
                        Verdict::Keep
                    } else {
                        Verdict::Remove
                    }
                })?;
                if !done.removed.is_empty() || done.dropped_stray > 0 {
                    tracing::warn!(
                        shard = id,
                        entries = done.removed.len(),
                        lines = done.dropped_stray,
                        "unreadable JSONL entries and lines removed at the operator's request"
                    );
                }
                Ok(done.removed.len() + usize::try_from(done.dropped_stray).unwrap_or(usize::MAX))
            })?;
        }
        Ok(removed)
    }
}

/// Whether `entry` is written with a credential token.
fn has_credentials(entry: &CacheEntry) -> bool {
    entry.username.is_some() || entry.password.is_some()
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl CacheTier for JsonlTier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L2
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.health.observe(self.get_inner(key, true))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.health.observe(self.get_inner(key, false))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.health.observe(self.put_inner(entry))
    }

    /// The check, `still_below` and the append under the home shard's exclusive lock.
    fn put_if_absent_with(&self, entry: &CacheEntry, still_below: &mut dyn FnMut() -> bool) -> Result<bool, TierError> {
        self.health.observe(self.put_if_absent_inner(entry, still_below))
    }

    /// Each record is read, applied and appended under its shard's exclusive lock, so a put
    /// or delete by another process in between is never overwritten by the older line.
    fn record_accesses(&self, records: &[pw_cache_model::AccessRecord]) -> Result<usize, TierError> {
        self.health.observe(self.record_accesses_inner(records))
    }

    /// Read, checked, and appended marked (or removed) under the shard's exclusive lock, so a
    /// put or delete by another process in between is never overwritten.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.health.observe(self.mark_failure_inner(key, evict_at))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.health.observe(self.delete_inner(key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.health.observe(self.clear_inner())
    }

    fn size(&self) -> Result<usize, TierError> {
        self.health.observe(self.size_inner())
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.health.observe(self.keys_inner())
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.health.observe(self.contains_inner(key))
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.health.observe(self.cleanup_inner(now))
    }

    fn health(&self) -> &TierHealth {
        &self.health
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
        self.health.observe(self.credential_sample_inner(limit))
    }

    /// Removes the entries whose line has broken fields or a token that is not hex or that no
    /// key of the ring opens, and the lines that are not JSON or not an entry; each shard in one
    /// atomic rewrite. Returns how many entries and lines it removed.
    fn remove_unreadable(&self) -> Result<usize, TierError> {
        self.health.observe(self.remove_unreadable_inner())
    }

    fn compact(&self) -> Result<usize, TierError> {
        // The inherent method records its outcome in the tier's health.
        JsonlTier::compact(self)
    }

    /// Creates, writes, syncs and removes a file in the directory, then opens every existing
    /// shard for appending: what a put needs. Nothing of the shards changes.
    fn probe(&self) -> Result<(), TierError> {
        self.health.observe(self.probe_inner())
    }
}

#[cfg(test)]
mod lax_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unreadable_tests;
