//! One shard file and what this process knows of it: the index of live lines, the file handle it
//! was built from, the locks, catching up with other processes, appends and atomic rewrites.
//!
//! Invariants:
//! - `index` describes exactly the bytes `0..ident.len` of the file `file` refers to (the inode
//!   named by `ident`). Lines of an inode never change once written (every writer appends or
//!   replaces the whole file by rename), so a line found in the index can be read from `file`
//!   without a lock, even after the path has moved on to another file.
//! - `ident == None` means nothing is known: the next sync reads the file from scratch.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pw_cache_crypto::private_fs;
use pw_cache_model::{EvictionPolicy, OffsetDateTime};

use super::line::{self, Classified};
use super::{JsonlDamage, MIN_DEAD_LINES, shard_of};
use crate::error::TierError;

/// How long a lock is waited for before the operation fails (proxywhirl waits 5 s).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two attempts to take a lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(1);
/// How many times the file at the path may change under us before we give up.
const MAX_REOPEN: usize = 64;

/// What identifies the content we indexed: which inode, how long, last modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Ident {
    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    fn same_file(&self, other: &Ident) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Unix microseconds of a timestamp, rounded down (so `now >= expires_at` compares exactly).
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// What eviction orders entries by (see the module docs of `jsonl` for the approximation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rank {
    /// Last use, Unix µs: the stored `last_accessed`, or when this process last put or got it.
    pub(crate) used: i64,
    /// Uses: the stored `access_count`, plus the hits this process served.
    pub(crate) hits: u64,
    /// First insertion, Unix µs: the stored `fetch_time`, or when this process first put it.
    pub(crate) born: i64,
}

impl Rank {
    /// `self` for a key that had `prior`: the later use, the higher count, the first insertion.
    fn after(self, prior: Option<Rank>) -> Rank {
        match prior {
            None => self,
            Some(p) => Rank {
                used: self.used.max(p.used),
                hits: self.hits.max(p.hits),
                born: p.born,
            },
        }
    }
}

/// Eviction order: smaller goes first. Unreadable entries go before any readable one.
pub(crate) type Priority = (u8, i128, i128);

#[derive(Debug)]
enum SlotState {
    Valid { rank: Rank, expires: i64 },
    Invalid(Box<str>),
}

/// The live line of one key.
#[derive(Debug)]
pub(crate) struct Slot {
    offset: u64,
    len: usize,
    home: u8,
    state: SlotState,
}

impl Slot {
    fn rank(&self) -> Option<Rank> {
        match self.state {
            SlotState::Valid { rank, .. } => Some(rank),
            SlotState::Invalid(_) => None,
        }
    }

    fn is_invalid(&self) -> bool {
        matches!(self.state, SlotState::Invalid(_))
    }

    /// Whether the entry is expired at `now` (Unix µs): `now >= expires_at`. An unreadable
    /// entry has no known expiry and is never expired.
    pub(crate) fn expired_at(&self, now: i64) -> bool {
        matches!(self.state, SlotState::Valid { expires, .. } if now >= expires)
    }

    fn priority(&self, policy: EvictionPolicy) -> Priority {
        match self.state {
            SlotState::Invalid(_) => (0, 0, 0),
            SlotState::Valid { rank, .. } => match policy {
                EvictionPolicy::Lru => (1, rank.used.into(), rank.born.into()),
                EvictionPolicy::Lfu => (1, rank.hits.into(), rank.used.into()),
                EvictionPolicy::Fifo => (1, rank.born.into(), rank.used.into()),
            },
        }
    }
}

/// Lines that are not the live line of a key.
#[derive(Debug, Default, Clone, Copy)]
struct LineCounts {
    blank: u64,
    undecodable: u64,
    non_entry: u64,
    superseded: u64,
}

impl LineCounts {
    fn dead(&self) -> u64 {
        self.blank + self.undecodable + self.non_entry + self.superseded
    }
}

/// What the index says of a key.
pub(crate) enum Found {
    /// Its live line: read `len` bytes at `offset` of `file`.
    Line { file: Arc<File>, offset: u64, len: usize },
    /// Its live line is an object with this key that is not an entry.
    Invalid(String),
}

/// A lock held on a shard file (exclusive or shared); released when dropped.
pub(crate) struct LockGuard {
    file: Arc<File>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the descriptor would release it too; the handle is kept, so unlock now.
        let _ = self.file.unlock();
    }
}

/// Takes a lock on `file`, polling so a stuck holder becomes an error after [`LOCK_TIMEOUT`].
fn lock(file: &Arc<File>, path: &Path, exclusive: bool) -> Result<LockGuard, TierError> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut pause = Duration::from_micros(10);
    loop {
        // std's own `flock`-based locks: the same locks as fs4's and Python's portalocker.
        let attempt = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match attempt {
            Ok(()) => return Ok(LockGuard { file: Arc::clone(file) }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(MAX_LOCK_PAUSE);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(TierError::Io {
                    op: "lock shard",
                    path: path.to_owned(),
                    source: io::Error::new(
                        ErrorKind::TimedOut,
                        format!("the lock was held by another process for {} s", LOCK_TIMEOUT.as_secs()),
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(TierError::io("lock shard", path)(e)),
        }
    }
}

/// Reads bytes `from..to` of `file`.
fn read_range(file: &File, from: u64, to: u64, path: &Path) -> Result<Vec<u8>, TierError> {
    let len = usize::try_from(to.saturating_sub(from)).map_err(|_| TierError::Io {
        op: "read shard",
        path: path.to_owned(),
        source: io::Error::new(ErrorKind::OutOfMemory, "shard file larger than the address space"),
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, from)
        .map_err(TierError::io("read shard", path))?;
    Ok(buf)
}

/// Whether a line is skipped as blank by the reference (`not line.strip()`).
fn is_blank(content: &[u8]) -> bool {
    match content.first() {
        None => true,
        Some(b'{') => false,
        Some(_) => std::str::from_utf8(content)
            .is_ok_and(|s| s.chars().all(|c| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}'))),
    }
}

/// One shard: see the module docs.
#[derive(Debug)]
pub(crate) struct Shard {
    id: u8,
    dir: PathBuf,
    path: PathBuf,
    tmp_path: PathBuf,
    file: Option<Arc<File>>,
    writable: bool,
    ident: Option<Ident>,
    /// The file's last line has no terminator (a crash cut it, or a hand-made file).
    unterminated: bool,
    index: HashMap<String, Slot>,
    counts: LineCounts,
    /// Live keys whose md5 shard is another one.
    foreign: usize,
    /// Live keys whose line is not an entry.
    invalid: usize,
    /// Live keys a get found unreadable (credentials), until their line changes.
    corrupt: HashSet<String>,
}

impl Shard {
    pub(crate) fn new(dir: &Path, id: u8) -> Self {
        let name = super::shard_file_name(usize::from(id));
        Self {
            id,
            dir: dir.to_owned(),
            path: dir.join(&name),
            tmp_path: dir.join(format!("{name}.tmp")),
            file: None,
            writable: false,
            ident: None,
            unterminated: false,
            index: HashMap::new(),
            counts: LineCounts::default(),
            foreign: 0,
            invalid: 0,
            corrupt: HashSet::new(),
        }
    }

    /// The path of this shard's temporary file (written, then renamed over the shard).
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Live keys held in this shard whose md5 shard is another.
    pub(crate) fn foreign(&self) -> usize {
        self.foreign
    }

    /// Live keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// Lines that are not the live line of a key.
    pub(crate) fn dead_lines(&self) -> u64 {
        self.counts.dead()
    }

    /// Adds this shard's damage to `d`.
    pub(crate) fn add_damage(&self, d: &mut JsonlDamage) {
        d.blank_lines += self.counts.blank;
        d.undecodable_lines += self.counts.undecodable;
        d.non_entry_lines += self.counts.non_entry;
        d.invalid_entries += self.invalid as u64;
        d.misplaced_keys += self.foreign as u64;
        d.corrupt_entries += self.corrupt.len() as u64;
    }

    /// Whether the dead lines call for a compaction.
    pub(crate) fn needs_compaction(&self) -> bool {
        let dead = self.counts.dead();
        dead >= MIN_DEAD_LINES && dead > self.index.len() as u64
    }

    /// Whether any entry is expired at `now` (Unix µs).
    pub(crate) fn any_expired(&self, now: i64) -> bool {
        self.index.values().any(|s| s.expired_at(now))
    }

    /// Forgets everything: the file is gone.
    fn forget(&mut self) {
        self.file = None;
        self.writable = false;
        self.ident = None;
        self.unterminated = false;
        self.index.clear();
        self.counts = LineCounts::default();
        self.foreign = 0;
        self.invalid = 0;
        self.corrupt.clear();
    }

    /// Makes the next sync read the file from scratch.
    pub(crate) fn invalidate(&mut self) {
        self.ident = None;
    }

    /// Brings the index up to date with the file at the path, for reading: a `stat` when
    /// nothing changed; else, under a shared lock, the appended tail or the whole new file.
    pub(crate) fn sync(&mut self) -> Result<(), TierError> {
        for _ in 0..MAX_REOPEN {
            let meta = match fs::metadata(&self.path) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.forget();
                    return Ok(());
                }
                Err(e) => return Err(TierError::io("stat shard", &self.path)(e)),
            };
            let now = Ident::of(&meta);
            if self.ident == Some(now) {
                return Ok(());
            }
            let (file, writable) = match &self.file {
                Some(f) if self.ident.is_some_and(|old| old.same_file(&now)) => (Arc::clone(f), self.writable),
                _ => match open_existing(&self.path) {
                    Ok(opened) => opened,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(TierError::io("open shard", &self.path)(e)),
                },
            };
            let _guard = lock(&file, &self.path, false)?;
            if let Some(fmeta) = self.locked_file_is_current(&file)? {
                return self.catch_up(file, writable, &fmeta);
            }
        }
        Err(self.unstable())
    }

    /// Takes the exclusive lock of the shard file (creating it if missing) and brings the index
    /// up to date with it. Every change to the file happens under the returned guard.
    pub(crate) fn lock_exclusive(&mut self) -> Result<LockGuard, TierError> {
        let mut reuse = true;
        for _ in 0..MAX_REOPEN {
            let file = match &self.file {
                Some(f) if reuse && self.writable => Arc::clone(f),
                _ => Arc::new(
                    private_fs::open_options()
                        .read(true)
                        .append(true)
                        .create(true)
                        .open(&self.path)
                        .map_err(TierError::io("open shard", &self.path))?,
                ),
            };
            let guard = lock(&file, &self.path, true)?;
            if let Some(fmeta) = self.locked_file_is_current(&file)? {
                self.catch_up(file, true, &fmeta)?;
                return Ok(guard);
            }
            reuse = false;
        }
        Err(self.unstable())
    }

    /// With a lock held on `file`: its metadata if it is still the file at the path (a file
    /// replaced by rename or removed while we waited must not be used).
    fn locked_file_is_current(&self, file: &File) -> Result<Option<Metadata>, TierError> {
        let fmeta = file.metadata().map_err(TierError::io("stat shard", &self.path))?;
        match fs::metadata(&self.path) {
            Ok(pmeta) if pmeta.dev() == fmeta.dev() && pmeta.ino() == fmeta.ino() => Ok(Some(fmeta)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TierError::io("stat shard", &self.path)(e)),
        }
    }

    fn unstable(&self) -> TierError {
        TierError::Io {
            op: "open shard",
            path: self.path.clone(),
            source: io::Error::other("the file kept being replaced while it was opened"),
        }
    }

    /// With a lock held on `file` (the current file): reads what changed since the index was
    /// built, only the tail when the file just grew.
    fn catch_up(&mut self, file: Arc<File>, writable: bool, fmeta: &Metadata) -> Result<(), TierError> {
        let now = Ident::of(fmeta);
        match self.ident.filter(|old| old.same_file(&now)) {
            Some(old) if old.len == now.len && old.mtime == now.mtime => {}
            Some(old) if now.len > old.len => {
                let tail = read_range(&file, old.len, now.len, &self.path)?;
                if !self.ingest_tail(&tail, old.len) {
                    let all = read_range(&file, 0, now.len, &self.path)?;
                    self.reindex(&all);
                }
            }
            _ => {
                let all = read_range(&file, 0, now.len, &self.path)?;
                self.reindex(&all);
            }
        }
        self.file = Some(file);
        self.writable = writable;
        self.ident = Some(now);
        Ok(())
    }

    /// Rebuilds the index from the whole file, keeping what this process knew of the ranks.
    fn reindex(&mut self, bytes: &[u8]) {
        let previous = std::mem::take(&mut self.index);
        self.counts = LineCounts::default();
        self.foreign = 0;
        self.invalid = 0;
        self.corrupt.clear();
        self.unterminated = false;
        self.ingest(bytes, 0, Some(&previous));
    }

    /// Adds the lines appended after the indexed part; `false` when the tail does not continue
    /// the file as we knew it (then the whole file must be read again).
    fn ingest_tail(&mut self, mut bytes: &[u8], mut base: u64) -> bool {
        if self.unterminated {
            // Our writers end a cut line before appending; anything else rewrote that line.
            match bytes.first() {
                Some(b'\n') => {
                    bytes = &bytes[1..];
                    base += 1;
                    self.unterminated = false;
                }
                _ => return false,
            }
        }
        self.ingest(bytes, base, None);
        true
    }

    /// Indexes `bytes`, which start at file offset `base` at the start of a line. Lines end at
    /// `\n`, `\r\n` or `\r` (Python's universal newlines).
    fn ingest(&mut self, bytes: &[u8], base: u64, previous: Option<&HashMap<String, Slot>>) {
        let mut pos = 0usize;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let (content_len, term_len) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
                Some(i) => (i, 1),
                None => (rest.len(), 0),
            };
            self.ingest_line(&rest[..content_len], base + pos as u64, previous);
            self.unterminated = term_len == 0;
            pos += content_len + term_len;
        }
    }

    fn ingest_line(&mut self, content: &[u8], offset: u64, previous: Option<&HashMap<String, Slot>>) {
        if is_blank(content) {
            self.counts.blank += 1;
            return;
        }
        let (key, state) = match line::classify(content) {
            Classified::Entry(parsed) => {
                let rank = Rank {
                    used: micros(parsed.last_accessed),
                    hits: parsed.access_count,
                    born: micros(parsed.fetch_time),
                };
                let expires = micros(parsed.expires_at);
                (parsed.key.into_owned(), SlotState::Valid { rank, expires })
            }
            Classified::Invalid { key, reason } => (key, SlotState::Invalid(reason.into())),
            Classified::NonEntry => {
                self.counts.non_entry += 1;
                return;
            }
            Classified::Undecodable => {
                self.counts.undecodable += 1;
                return;
            }
        };
        let prior = self
            .index
            .get(&key)
            .or_else(|| previous.and_then(|p| p.get(&key)))
            .and_then(Slot::rank);
        let state = match state {
            SlotState::Valid { rank, expires } => SlotState::Valid {
                rank: rank.after(prior),
                expires,
            },
            invalid => invalid,
        };
        let home = shard_of(&key) as u8;
        self.insert(
            key,
            Slot {
                offset,
                len: content.len(),
                home,
                state,
            },
        );
    }

    /// Makes `slot` the live line of `key`, keeping the counters right.
    fn insert(&mut self, key: String, slot: Slot) {
        let (home, invalid) = (slot.home, slot.is_invalid());
        self.corrupt.remove(&key);
        match self.index.insert(key, slot) {
            Some(old) => {
                self.counts.superseded += 1;
                if old.is_invalid() {
                    self.invalid -= 1;
                }
            }
            None if home != self.id => self.foreign += 1,
            None => {}
        }
        if invalid {
            self.invalid += 1;
        }
    }

    /// Drops `key` from the index, keeping the counters right.
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.index.remove(key) {
            if old.home != self.id {
                self.foreign -= 1;
            }
            if old.is_invalid() {
                self.invalid -= 1;
            }
        }
        self.corrupt.remove(key);
    }

    /// The live line of `key`; a hit at `now` (Unix µs) counts as a use for eviction.
    /// The live line of `key`; `used_at` records a use of it (for eviction) at that time.
    pub(crate) fn find(&mut self, key: &str, used_at: Option<i64>) -> Option<Found> {
        let file = self.file.as_ref()?;
        let slot = self.index.get_mut(key)?;
        match &mut slot.state {
            SlotState::Invalid(reason) => Some(Found::Invalid(reason.to_string())),
            SlotState::Valid { rank, .. } => {
                if let Some(now) = used_at {
                    rank.used = rank.used.max(now);
                    rank.hits = rank.hits.saturating_add(1);
                }
                Some(Found::Line {
                    file: Arc::clone(file),
                    offset: slot.offset,
                    len: slot.len,
                })
            }
        }
    }

    /// Records that the live line of `key` (at `offset`) cannot be read.
    pub(crate) fn mark_corrupt(&mut self, key: &str, offset: u64) {
        if self.index.get(key).is_some_and(|s| s.offset == offset) {
            self.corrupt.insert(key.to_owned());
        }
    }

    /// Appends `line` (without terminator) as the live line of `key`. `_guard` proves the
    /// exclusive lock is held and the index is current, so the file ends where the index does.
    pub(crate) fn append(
        &mut self,
        _guard: &LockGuard,
        key: &str,
        line: &[u8],
        rank: Rank,
        expires: i64,
    ) -> Result<(), TierError> {
        let (Some(file), Some(before)) = (self.file.clone(), self.ident) else {
            return Err(self.not_locked());
        };
        let lead = u64::from(self.unterminated);
        let mut buf = Vec::with_capacity(line.len() + 2);
        if self.unterminated {
            // End the cut line first, so it stays one damaged line and ours stays intact.
            buf.push(b'\n');
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if let Err(e) = (&*file).write_all(&buf) {
            // Part of the line may be on disk: read the file again next time.
            self.ident = None;
            return Err(TierError::io("append to shard", &self.path)(e));
        }
        let after = match file.metadata() {
            Ok(m) => Ident::of(&m),
            Err(e) => {
                self.ident = None;
                return Err(TierError::io("stat shard", &self.path)(e));
            }
        };
        if after.len != before.len + buf.len() as u64 {
            // Someone wrote without the lock: trust only a fresh read.
            self.ident = None;
            return Ok(());
        }
        self.ident = Some(after);
        self.unterminated = false;
        let prior = self.index.get(key).and_then(Slot::rank);
        self.insert(
            key.to_owned(),
            Slot {
                offset: before.len + lead,
                len: line.len(),
                home: self.id,
                state: SlotState::Valid {
                    rank: rank.after(prior),
                    expires,
                },
            },
        );
        Ok(())
    }

    /// Replaces the file with one holding only the live lines, minus the keys `remove` picks;
    /// returns those keys. The new file is written to `shard_NN.jsonl.tmp`, fsynced, renamed
    /// over the shard and the directory fsynced. Damaged and superseded lines are dropped.
    pub(crate) fn rewrite(
        &mut self,
        _guard: &LockGuard,
        mut remove: impl FnMut(&str, &Slot) -> bool,
    ) -> Result<Vec<String>, TierError> {
        let (Some(file), Some(ident)) = (self.file.clone(), self.ident) else {
            return Err(self.not_locked());
        };
        let old = read_range(&file, 0, ident.len, &self.path)?;
        let removed: Vec<String> = self
            .index
            .iter()
            .filter(|(k, s)| remove(k, s))
            .map(|(k, _)| k.clone())
            .collect();
        let gone: HashSet<&str> = removed.iter().map(String::as_str).collect();
        let mut live: Vec<(u64, usize)> = self
            .index
            .iter()
            .filter(|(k, _)| !gone.contains(k.as_str()))
            .map(|(_, s)| (s.offset, s.len))
            .collect();
        live.sort_unstable();
        let mut out = Vec::with_capacity(live.iter().map(|(_, len)| len + 1).sum());
        let mut moved = HashMap::with_capacity(live.len());
        for (offset, len) in live {
            let start = usize::try_from(offset).ok();
            let Some(bytes) = start.and_then(|s| old.get(s..s.checked_add(len)?)) else {
                self.ident = None;
                return Err(TierError::Io {
                    op: "rewrite shard",
                    path: self.path.clone(),
                    source: io::Error::other("the index points past the end of the file"),
                });
            };
            moved.insert(offset, out.len() as u64);
            out.extend_from_slice(bytes);
            out.push(b'\n');
        }
        let (new_file, meta) = self.replace_file(&out)?;
        // The file is replaced: the index must describe the new one from here on.
        for key in &removed {
            self.remove(key);
        }
        for slot in self.index.values_mut() {
            if let Some(&offset) = moved.get(&slot.offset) {
                slot.offset = offset;
            }
        }
        self.counts = LineCounts::default();
        self.unterminated = false;
        self.file = Some(Arc::new(new_file));
        self.writable = true;
        self.ident = Some(Ident::of(&meta));
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Writes `bytes` to the temporary file, fsyncs it and renames it over the shard.
    fn replace_file(&self, bytes: &[u8]) -> Result<(File, Metadata), TierError> {
        let tmp = &self.tmp_path;
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io("remove temporary file", tmp)(e)),
        }
        let written = (|| {
            let mut f = private_fs::open_options()
                .read(true)
                .append(true)
                .create_new(true)
                .open(tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            let meta = f.metadata()?;
            Ok::<_, io::Error>((f, meta))
        })();
        let (f, meta) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(TierError::io("write temporary file", tmp)(e));
            }
        };
        if let Err(e) = fs::rename(tmp, &self.path) {
            let _ = fs::remove_file(tmp);
            return Err(TierError::io("rename temporary file over", &self.path)(e));
        }
        Ok((f, meta))
    }

    /// Removes the shard file (under its exclusive lock); returns the keys it held.
    pub(crate) fn remove_file(&mut self) -> Result<Vec<String>, TierError> {
        if !self.path.exists() {
            self.forget();
            return Ok(Vec::new());
        }
        let guard = self.lock_exclusive()?;
        let keys = self.index.keys().cloned().collect();
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io("remove shard", &self.path)(e)),
        }
        self.forget();
        drop(guard);
        Ok(keys)
    }

    /// Up to `need` keys that go first under `policy`, `exclude` left out.
    pub(crate) fn victims(&self, policy: EvictionPolicy, exclude: &str, need: usize) -> Vec<(Priority, String)> {
        let mut best: Vec<(Priority, &str)> = Vec::with_capacity(need.min(self.index.len()) + 1);
        for (key, slot) in &self.index {
            let p = slot.priority(policy);
            // Most entries lose on priority alone: compare keys only when it ties.
            let wins = best.len() < need || best.last().is_some_and(|(worst, k)| (p, key.as_str()) < (*worst, *k));
            if wins && key != exclude {
                let at = best.partition_point(|(q, k)| (*q, *k) < (p, key.as_str()));
                best.insert(at, (p, key));
                best.truncate(need);
            }
        }
        best.into_iter().map(|(p, k)| (p, k.to_owned())).collect()
    }

    fn not_locked(&self) -> TierError {
        TierError::Io {
            op: "write shard",
            path: self.path.clone(),
            source: io::Error::other("the shard is not open for writing"),
        }
    }
}

/// Opens an existing shard for reading and appending, or only reading when that is refused.
fn open_existing(path: &Path) -> io::Result<(Arc<File>, bool)> {
    match OpenOptions::new().read(true).append(true).open(path) {
        Ok(f) => Ok((Arc::new(f), true)),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(e),
        Err(_) => File::open(path).map(|f| (Arc::new(f), false)),
    }
}

/// Fsyncs a directory, making renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), TierError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(TierError::io("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_what_python_strips() {
        for blank in [&b""[..], b"  ", b"\t\x0b\x0c", b"\x1c\x1f", "\u{a0}\u{3000}".as_bytes()] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for not_blank in [&b"{}"[..], b" x", b"\xff"] {
            assert!(!is_blank(not_blank), "{not_blank:?}");
        }
    }

    #[test]
    fn rank_keeps_first_insertion_and_latest_use() {
        let old = Rank {
            used: 5,
            hits: 9,
            born: 1,
        };
        let new = Rank {
            used: 7,
            hits: 2,
            born: 6,
        };
        assert_eq!(
            new.after(Some(old)),
            Rank {
                used: 7,
                hits: 9,
                born: 1
            }
        );
        assert_eq!(new.after(None), new);
    }

    #[test]
    fn micros_rounds_down() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(micros(t), -1);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_999).unwrap();
        assert_eq!(micros(t), 1);
    }
}
