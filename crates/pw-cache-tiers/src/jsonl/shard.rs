//! One shard file and what this process knows of it: the index of live lines, the file handle it
//! was built from, the locks, catching up with other processes, appends and atomic rewrites.
//!
//! Lines that no key owns but that are not blank (not JSON, or JSON that is no entry) are
//! *stray* lines: unreadable, never dead. A rewrite carries them over verbatim (content and
//! terminator) in their place among the kept lines; only the operator's removal
//! (`remove_unreadable`) drops them. Likewise a live line that cannot be read (broken fields,
//! a token no key opens) is kept by every rewrite except one that removes its key.
//!
//! Invariants:
//! - `index` describes exactly the bytes `0..ident.len` of the file `file` refers to (the inode
//!   named by `ident`). Lines of an inode never change once written (every writer appends or
//!   replaces the whole file by rename), so a line found in the index can be read from `file`
//!   without a lock, even after the path has moved on to another file.
//! - `ident == None` means nothing is known: the next sync reads the file from scratch.

use std::collections::{HashMap, HashSet};
#[cfg(test)]
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pw_cache_crypto::private_fs;
use pw_cache_model::limits::MAX_LINE_BYTES;
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

/// Eviction order among readable entries: smaller goes first. (Unreadable entries are never
/// victims.)
pub(crate) type Priority = (i128, i128);

#[derive(Debug)]
enum SlotState {
    Valid {
        rank: Rank,
        expires: i64,
    },
    /// An object with this key that is not an entry; `expires` is its `expires_at` when that
    /// field alone can be read.
    Invalid {
        reason: Box<str>,
        expires: Option<i64>,
    },
}

/// The live line of one key.
#[derive(Debug)]
pub(crate) struct Slot {
    offset: u64,
    len: usize,
    home: u8,
    /// Length of the line's terminator (`\n`, `\r`: 1; `\r\n`: 2; 0 for a last line without).
    term: u8,
    /// Whether the line holds a credential token (a non-empty `*_encrypted` field).
    creds: bool,
    /// Whether its tokens are known to open with the ring: this process wrote the line (with
    /// the ring's current key), so eviction and expiry cleanup need not try them.
    verified: bool,
    /// Whether a token of the line was found unreadable: not hex, or no key of the ring opens it.
    corrupt: bool,
    state: SlotState,
}

impl Slot {
    fn rank(&self) -> Option<Rank> {
        match self.state {
            SlotState::Valid { rank, .. } => Some(rank),
            SlotState::Invalid { .. } => None,
        }
    }

    fn is_invalid(&self) -> bool {
        matches!(self.state, SlotState::Invalid { .. })
    }

    /// Whether the entry is known to be unreadable: broken fields, or a token found unreadable.
    /// (A token no key opens is only known once something tried it: see
    /// [`Slot::has_untried_tokens`].)
    pub(crate) fn is_unreadable(&self) -> bool {
        self.corrupt || self.is_invalid()
    }

    /// Whether the line holds credential tokens that must be tried against the ring before the
    /// entry is known to be readable (tokens this process wrote are known to open).
    pub(crate) fn has_untried_tokens(&self) -> bool {
        self.creds && !self.verified
    }

    /// Whether the entry, not known to be unreadable, is expired at `now` (Unix µs):
    /// `now >= expires_at`. An entry known to be unreadable is never expired.
    pub(crate) fn expired_at(&self, now: i64) -> bool {
        !self.corrupt && matches!(self.state, SlotState::Valid { expires, .. } if now >= expires)
    }

    /// Whether the entry is known to be unreadable and its `expires_at` field, read alone, is
    /// past at `now`: what expiry cleanup leaves and counts.
    fn unreadable_and_past(&self, now: i64) -> bool {
        match self.state {
            SlotState::Valid { expires, .. } => self.corrupt && now >= expires,
            SlotState::Invalid { expires, .. } => expires.is_some_and(|e| now >= e),
        }
    }

    fn priority(&self, policy: EvictionPolicy) -> Option<Priority> {
        match self.state {
            _ if self.corrupt => None,
            SlotState::Invalid { .. } => None,
            SlotState::Valid { rank, .. } => Some(match policy {
                EvictionPolicy::Lru => (rank.used.into(), rank.born.into()),
                EvictionPolicy::Lfu => (rank.hits.into(), rank.used.into()),
                EvictionPolicy::Fifo => (rank.born.into(), rank.used.into()),
            }),
        }
    }
}

/// A stray line: not blank, owned by no key (not JSON, or JSON that is no entry). Unreadable,
/// kept by every rewrite but the operator's removal.
#[derive(Debug, Clone, Copy)]
struct Stray {
    offset: u64,
    len: usize,
    term: u8,
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
    /// Lines a rewrite drops: blank and superseded ones. Stray lines (undecodable, non-entry)
    /// are unreadable, not dead: every rewrite keeps them.
    fn dead(&self) -> u64 {
        self.blank + self.superseded
    }
}

/// What the index says of a key.
pub(crate) enum Found {
    /// Its live line: read `len` bytes at `offset` of `file`. `prior` is the key's rank before
    /// this lookup recorded a use of it (to be put back if the line turns out unreadable).
    Line {
        file: Arc<File>,
        offset: u64,
        len: usize,
        prior: Option<Rank>,
    },
    /// Its live line is an object with this key that is not an entry.
    Invalid(String),
}

/// What a rewrite does with the live line of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Carried over.
    Keep,
    /// Left out: the key is removed.
    Remove,
    /// Would have been removed, but the entry cannot be read: carried over, marked unreadable
    /// and reported in [`Rewritten::kept_unreadable`].
    KeepUnreadable,
}

/// What a rewrite did.
#[derive(Debug, Default)]
pub(crate) struct Rewritten {
    /// Keys removed.
    pub(crate) removed: Vec<String>,
    /// Keys whose verdict was [`Verdict::KeepUnreadable`].
    pub(crate) kept_unreadable: Vec<String>,
    /// Stray lines carried over verbatim.
    pub(crate) carried_stray: u64,
    /// Stray lines dropped (only by the operator's removal).
    pub(crate) dropped_stray: u64,
}

/// A test's hook, run after the temporary file of a rewrite is written and before the shard
/// file's identity is checked for the rename: it plays another writer working meanwhile.
#[cfg(test)]
pub(crate) struct RenameHook(pub(crate) Box<dyn FnMut(&Path) + Send>);

#[cfg(test)]
impl fmt::Debug for RenameHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RenameHook")
    }
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

/// How many bytes of a shard are read at a time when indexing it or copying a long line.
const READ_CHUNK: usize = 1 << 20;

/// Up to [`READ_CHUNK`] of `left` bytes.
fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(READ_CHUNK, |left| left.min(READ_CHUNK))
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

/// Where the line that goes on at `from` ends, before `to`: the offset of its terminator and
/// the terminator's length (`\n`, `\r\n`, `\r`; 0 when the line runs to `to`). Reads
/// [`READ_CHUNK`] bytes at a time, holding nothing more.
fn line_end(file: &File, mut from: u64, to: u64) -> io::Result<(u64, u8)> {
    let mut buf = vec![0u8; chunk_len(to.saturating_sub(from))];
    while from < to {
        let n = chunk_len(to - from);
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n' || b == b'\r') {
            let at = from + i as u64;
            if buf[i] == b'\n' {
                return Ok((at, 1));
            }
            let next = if i + 1 < n {
                Some(buf[i + 1])
            } else if at + 1 < to {
                let mut next = [0u8; 1];
                file.read_exact_at(&mut next, at + 1)?;
                Some(next[0])
            } else {
                None
            };
            return Ok((at, if next == Some(b'\n') { 2 } else { 1 }));
        }
        from += n as u64;
    }
    Ok((to, 0))
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
    /// Live keys whose credentials were found unreadable, until their line changes.
    corrupt: usize,
    /// Stray lines, in file order.
    stray: Vec<Stray>,
    /// See [`RenameHook`].
    #[cfg(test)]
    pub(crate) before_rename: Option<RenameHook>,
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
            corrupt: 0,
            stray: Vec::new(),
            #[cfg(test)]
            before_rename: None,
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

    /// Whether the shard file existed when last synced.
    pub(crate) fn exists(&self) -> bool {
        self.ident.is_some()
    }

    /// Lines a rewrite drops: superseded and blank ones (stray lines are not dead).
    pub(crate) fn dead_lines(&self) -> u64 {
        self.counts.dead()
    }

    /// Stray lines: not JSON, or JSON that is no entry (kept by rewrites).
    pub(crate) fn unreadable_lines(&self) -> u64 {
        self.stray.len() as u64
    }

    /// Adds this shard's damage to `d`.
    pub(crate) fn add_damage(&self, d: &mut JsonlDamage) {
        d.blank_lines += self.counts.blank;
        d.undecodable_lines += self.counts.undecodable;
        d.non_entry_lines += self.counts.non_entry;
        d.invalid_entries += self.invalid as u64;
        d.misplaced_keys += self.foreign as u64;
        d.corrupt_entries += self.corrupt as u64;
    }

    /// Whether the dead lines call for a compaction.
    pub(crate) fn needs_compaction(&self) -> bool {
        let dead = self.counts.dead();
        dead >= MIN_DEAD_LINES && dead > self.index.len() as u64
    }

    /// At `now` (Unix µs): whether any entry not known to be unreadable is expired, and how
    /// many entries known to be unreadable have an `expires_at` field that is past.
    pub(crate) fn expiry_scan(&self, now: i64) -> (bool, u64) {
        let mut any = false;
        let mut unreadable = 0;
        for slot in self.index.values() {
            any |= slot.expired_at(now);
            unreadable += u64::from(slot.unreadable_and_past(now));
        }
        (any, unreadable)
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
        self.corrupt = 0;
        self.stray.clear();
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
                    private_fs::open_regular(
                        private_fs::open_options().read(true).append(true).create(true),
                        &self.path,
                    )
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
        let read = match self.ident.filter(|old| old.same_file(&now)) {
            Some(old) if old.len == now.len && old.mtime == now.mtime => Ok(()),
            Some(old) if now.len > old.len => match self.ingest_tail(&file, old.len, now.len) {
                Ok(true) => Ok(()),
                Ok(false) => self.reindex(&file, now.len),
                Err(e) => Err(e),
            },
            _ => self.reindex(&file, now.len),
        };
        if let Err(e) = read {
            // The index may hold part of what was read: read the file again next time.
            self.ident = None;
            return Err(TierError::io("read shard", &self.path)(e));
        }
        self.file = Some(file);
        self.writable = writable;
        self.ident = Some(now);
        Ok(())
    }

    /// Rebuilds the index from bytes `0..len` of `file`, keeping what this process knew of
    /// the ranks.
    fn reindex(&mut self, file: &File, len: u64) -> io::Result<()> {
        let previous = std::mem::take(&mut self.index);
        self.counts = LineCounts::default();
        self.foreign = 0;
        self.invalid = 0;
        self.corrupt = 0;
        self.stray.clear();
        self.unterminated = false;
        self.ingest(file, 0, len, Some(&previous))
    }

    /// Adds the lines appended after the indexed part (`from..to` of `file`); `false` when the
    /// tail does not continue the file as we knew it (then the whole file must be read again).
    fn ingest_tail(&mut self, file: &File, mut from: u64, to: u64) -> io::Result<bool> {
        if self.unterminated {
            // Our writers end a cut line before appending; anything else rewrote that line.
            let mut first = [0u8; 1];
            file.read_exact_at(&mut first, from)?;
            if first[0] != b'\n' {
                return Ok(false);
            }
            from += 1;
            self.unterminated = false;
        }
        self.ingest(file, from, to, None)?;
        Ok(true)
    }

    /// Indexes bytes `from..to` of `file`; `from` is the start of a line. Lines end at `\n`,
    /// `\r\n` or `\r` (Python's universal newlines).
    ///
    /// Reads [`READ_CHUNK`] bytes at a time and holds at most one chunk and one line: a line
    /// longer than [`MAX_LINE_BYTES`] is not held whole but read past with a bounded buffer and
    /// counted as an undecodable (stray) line, its offset and length kept so rewrites carry it
    /// over byte for byte.
    fn ingest(&mut self, file: &File, from: u64, to: u64, previous: Option<&HashMap<String, Slot>>) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        // `buf` holds bytes `base..read_to` of the file; `base` is the start of a line.
        let mut base = from;
        let mut read_to = from;
        loop {
            if read_to < to {
                let want = chunk_len(to - read_to);
                let filled = buf.len();
                buf.resize(filled + want, 0);
                file.read_exact_at(&mut buf[filled..], read_to)?;
                read_to += want as u64;
            }
            let at_end = read_to >= to;
            let mut pos = 0usize;
            while pos < buf.len() {
                let rest = &buf[pos..];
                let (content_len, term_len) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                    Some(i) if rest[i] == b'\r' && i + 1 == rest.len() && !at_end => {
                        // A `\r` ends the buffer: the next byte (not read yet) tells `\r\n`.
                        let mut next = [0u8; 1];
                        file.read_exact_at(&mut next, read_to)?;
                        (i, if next[0] == b'\n' { 2 } else { 1 })
                    }
                    Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
                    Some(i) => (i, 1),
                    None if at_end => (rest.len(), 0),
                    None => break,
                };
                let offset = base + pos as u64;
                // The terminator is at most 2 bytes: the cast cannot truncate.
                if content_len > MAX_LINE_BYTES {
                    self.ingest_overlong(offset, content_len as u64, term_len as u8);
                } else {
                    self.ingest_line(&rest[..content_len], term_len as u8, offset, previous);
                }
                self.unterminated = term_len == 0;
                pos += content_len + term_len;
            }
            if pos >= buf.len() {
                // (`pos` is one past the buffer when a `\r\n` straddled its end.)
                base += pos as u64;
                read_to = base;
                buf.clear();
            } else {
                buf.drain(..pos);
                base += pos as u64;
            }
            if base >= to {
                return Ok(());
            }
            if buf.len() > MAX_LINE_BYTES {
                // The line at `base` is too long to hold: find its end without keeping it.
                let (end, term) = line_end(file, read_to, to)?;
                self.ingest_overlong(base, end - base, term);
                self.unterminated = term == 0;
                base = end + u64::from(term);
                read_to = base;
                buf = Vec::new();
                if base >= to {
                    return Ok(());
                }
            }
        }
    }

    /// Records a line longer than [`MAX_LINE_BYTES`] at `offset`: an undecodable (stray) line,
    /// never parsed, kept by rewrites like any other.
    fn ingest_overlong(&mut self, offset: u64, len: u64, term: u8) {
        tracing::warn!(
            shard = self.id,
            offset,
            len,
            limit = MAX_LINE_BYTES,
            "JSONL shard line longer than the limit: skipped, counted as undecodable, kept"
        );
        self.counts.undecodable += 1;
        self.stray.push(Stray {
            offset,
            len: usize::try_from(len).unwrap_or(usize::MAX),
            term,
        });
    }

    fn ingest_line(&mut self, content: &[u8], term: u8, offset: u64, previous: Option<&HashMap<String, Slot>>) {
        if is_blank(content) {
            self.counts.blank += 1;
            return;
        }
        let stray = Stray {
            offset,
            len: content.len(),
            term,
        };
        let (key, creds, state) = match line::classify(content) {
            Classified::Entry(parsed) => {
                parsed.report_nearest();
                let rank = Rank {
                    used: micros(parsed.last_accessed),
                    hits: parsed.access_count.value,
                    born: micros(parsed.fetch_time),
                };
                let expires = micros(parsed.expires_at);
                let creds = parsed.has_credentials();
                (parsed.key.into_owned(), creds, SlotState::Valid { rank, expires })
            }
            Classified::Invalid { key, reason, expires } => (
                key,
                false,
                SlotState::Invalid {
                    reason: reason.into(),
                    expires: expires.map(micros),
                },
            ),
            Classified::NonEntry => {
                self.counts.non_entry += 1;
                self.stray.push(stray);
                return;
            }
            Classified::Undecodable => {
                self.counts.undecodable += 1;
                self.stray.push(stray);
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
                term,
                creds,
                verified: false,
                corrupt: false,
                state,
            },
        );
    }

    /// Makes `slot` the live line of `key`, keeping the counters right.
    fn insert(&mut self, key: String, slot: Slot) {
        let (home, invalid) = (slot.home, slot.is_invalid());
        match self.index.insert(key, slot) {
            Some(old) => {
                self.counts.superseded += 1;
                if old.is_invalid() {
                    self.invalid -= 1;
                }
                if old.corrupt {
                    self.corrupt -= 1;
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
            if old.corrupt {
                self.corrupt -= 1;
            }
        }
    }

    /// The live line of `key`; `used_at` records a use of it (for eviction) at that time,
    /// unless the entry is known to be unreadable.
    pub(crate) fn find(&mut self, key: &str, used_at: Option<i64>) -> Option<Found> {
        let file = self.file.as_ref()?;
        let slot = self.index.get_mut(key)?;
        match &mut slot.state {
            SlotState::Invalid { reason, .. } => Some(Found::Invalid(reason.to_string())),
            SlotState::Valid { rank, .. } => {
                let prior = match used_at {
                    Some(now) if !slot.corrupt => {
                        let prior = *rank;
                        rank.used = rank.used.max(now);
                        rank.hits = rank.hits.saturating_add(1);
                        Some(prior)
                    }
                    _ => None,
                };
                Some(Found::Line {
                    file: Arc::clone(file),
                    offset: slot.offset,
                    len: slot.len,
                    prior,
                })
            }
        }
    }

    /// Records that the live line of `key` (at `offset`) cannot be read, and takes back the use
    /// the lookup that found it recorded (`prior`: the rank before it): reading an unreadable
    /// entry changes nothing. Whether the line was not known to be unreadable before.
    pub(crate) fn mark_corrupt(&mut self, key: &str, offset: u64, prior: Option<Rank>) -> bool {
        let Some(slot) = self.index.get_mut(key).filter(|s| s.offset == offset) else {
            return false;
        };
        if let (Some(prior), SlotState::Valid { rank, .. }) = (prior, &mut slot.state) {
            *rank = prior;
        }
        if slot.corrupt || slot.is_invalid() {
            return false;
        }
        slot.corrupt = true;
        self.corrupt += 1;
        true
    }

    /// Appends `line` (without terminator) as the live line of `key`; `creds` says whether it
    /// holds a credential token (encrypted with the ring's current key, so known to open).
    /// `_guard` proves the exclusive lock is held and the index is
    /// current, so the file ends where the index does.
    pub(crate) fn append(
        &mut self,
        _guard: &LockGuard,
        key: &str,
        line: &[u8],
        creds: bool,
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
                term: 1,
                creds,
                verified: true,
                corrupt: false,
                state: SlotState::Valid {
                    rank: rank.after(prior),
                    expires,
                },
            },
        );
        Ok(())
    }

    /// Replaces the file with one holding the lines `verdict` keeps, in their order and byte for
    /// byte (each with its own terminator; a last line without one gets `\n`): every live line
    /// whose verdict is not [`Verdict::Remove`], and every stray line unless `drop_stray`.
    /// Superseded and blank lines are dropped. `verdict` sees each live key, its slot and its
    /// line's bytes.
    ///
    /// The new file is written to `shard_NN.jsonl.tmp` and fsynced. Then, still under the lock,
    /// the shard file's identity (device, inode, length, mtime) is checked against what was read:
    /// a writer that does not take our lock (proxywhirl renames its own rewrite over the shard)
    /// may have changed it meanwhile, and renaming over its file would lose its lines. If so, the
    /// temporary file is dropped, the lock taken again on the file now at the path, its changes
    /// read, and the rewrite done again from there. Otherwise the temporary file is renamed over
    /// the shard and the directory fsynced.
    ///
    /// Nothing is written when nothing would change (no key removed, no stray line to drop, no
    /// dead line). Returns what was done, and the lock (held on the file now at the path).
    pub(crate) fn rewrite(
        &mut self,
        mut guard: LockGuard,
        drop_stray: bool,
        mut verdict: impl FnMut(&str, &Slot, &[u8]) -> Verdict,
    ) -> Result<(Rewritten, LockGuard), TierError> {
        for _ in 0..MAX_REOPEN {
            let (Some(file), Some(ident)) = (self.file.clone(), self.ident) else {
                return Err(self.not_locked());
            };
            // A file within READ_WHOLE is read at once (one read); a larger one line by line, so
            // a rewrite holds at most one line and one chunk of a long stray line.
            let old = if ident.len <= READ_WHOLE {
                Some(read_range(&file, 0, ident.len, &self.path)?)
            } else {
                None
            };
            let mut scratch = Vec::new();
            let mut done = Rewritten::default();
            for (key, slot) in &self.index {
                let bytes = match &old {
                    Some(old) => span(old, slot.offset, slot.len),
                    None => read_line(&file, slot.offset, slot.len, ident.len, &mut scratch),
                };
                let Some(bytes) = bytes else {
                    self.ident = None;
                    return Err(self.past_end());
                };
                match verdict(key, slot, bytes) {
                    Verdict::Keep => {}
                    Verdict::Remove => done.removed.push(key.clone()),
                    Verdict::KeepUnreadable => done.kept_unreadable.push(key.clone()),
                }
            }
            let drop_stray = drop_stray && !self.stray.is_empty();
            if done.removed.is_empty() && !drop_stray && self.counts.dead() == 0 {
                self.mark_unreadable(&done.kept_unreadable);
                return Ok((done, guard));
            }
            let gone: HashSet<&str> = done.removed.iter().map(String::as_str).collect();
            // (offset, content length, terminator length) of every line kept, in file order.
            let mut kept: Vec<(u64, usize, u8)> = self
                .index
                .iter()
                .filter(|(k, _)| !gone.contains(k.as_str()))
                .map(|(_, s)| (s.offset, s.len, s.term))
                .collect();
            if !drop_stray {
                kept.extend(self.stray.iter().map(|l| (l.offset, l.len, l.term)));
            }
            kept.sort_unstable();
            if kept
                .iter()
                .any(|&(offset, len, term)| offset.saturating_add((len + usize::from(term)) as u64) > ident.len)
            {
                self.ident = None;
                return Err(self.past_end());
            }
            let mut moved = HashMap::with_capacity(kept.len());
            let (new_file, meta) = self.write_tmp(|out| {
                let mut written = 0u64;
                let mut chunk = Vec::new();
                for &(offset, len, term) in &kept {
                    moved.insert(offset, written);
                    let with_term = len + usize::from(term);
                    match &old {
                        Some(old) => match span(old, offset, with_term) {
                            Some(bytes) => out.write_all(bytes)?,
                            None => return Err(io::Error::other("the index points past the end of the file")),
                        },
                        None => copy_range(&file, offset, with_term as u64, &mut chunk, out)?,
                    }
                    written += with_term as u64;
                    if term == 0 {
                        out.write_all(b"\n")?;
                        written += 1;
                    }
                }
                Ok(())
            })?;
            #[cfg(test)]
            if let Some(hook) = self.before_rename.as_mut() {
                (hook.0)(&self.path);
            }
            if !self.path_still_is(ident)? {
                // Changed by a writer without our lock: our rewrite would lose its lines.
                let _ = fs::remove_file(&self.tmp_path);
                drop(guard);
                tracing::debug!(shard = self.id, "JSONL shard changed during a rewrite; rewriting again");
                guard = self.lock_exclusive()?;
                continue;
            }
            if let Err(e) = fs::rename(&self.tmp_path, &self.path) {
                let _ = fs::remove_file(&self.tmp_path);
                return Err(TierError::io("rename temporary file over", &self.path)(e));
            }
            // The file is replaced: the index must describe the new one from here on.
            for key in &done.removed {
                self.remove(key);
            }
            for slot in self.index.values_mut() {
                if let Some(&offset) = moved.get(&slot.offset) {
                    slot.offset = offset;
                    slot.term = slot.term.max(1);
                }
            }
            if drop_stray {
                done.dropped_stray = self.stray.len() as u64;
                self.stray.clear();
                self.counts.undecodable = 0;
                self.counts.non_entry = 0;
            } else {
                done.carried_stray = self.stray.len() as u64;
                for line in &mut self.stray {
                    if let Some(&offset) = moved.get(&line.offset) {
                        line.offset = offset;
                        line.term = line.term.max(1);
                    }
                }
            }
            self.counts.blank = 0;
            self.counts.superseded = 0;
            self.mark_unreadable(&done.kept_unreadable);
            self.unterminated = false;
            self.file = Some(Arc::new(new_file));
            self.writable = true;
            self.ident = Some(Ident::of(&meta));
            sync_dir(&self.dir)?;
            return Ok((done, guard));
        }
        Err(self.unstable())
    }

    /// Marks the live lines of `keys` as holding an unreadable token.
    fn mark_unreadable(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(slot) = self.index.get_mut(key)
                && !slot.corrupt
                && !slot.is_invalid()
            {
                slot.corrupt = true;
                self.corrupt += 1;
            }
        }
    }

    /// Whether the file at the path is still the one described by `ident` (same device, inode,
    /// length and mtime).
    fn path_still_is(&self, ident: Ident) -> Result<bool, TierError> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Ident::of(&meta) == ident),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TierError::io("stat shard", &self.path)(e)),
        }
    }

    fn past_end(&self) -> TierError {
        TierError::Io {
            op: "rewrite shard",
            path: self.path.clone(),
            source: io::Error::other("the index points past the end of the file"),
        }
    }

    /// Writes what `fill` writes to a fresh temporary file (buffered) and fsyncs it.
    fn write_tmp(&self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(File, Metadata), TierError> {
        let tmp = &self.tmp_path;
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io("remove temporary file", tmp)(e)),
        }
        let written = (|| {
            let f = private_fs::open_regular(private_fs::open_options().read(true).append(true).create_new(true), tmp)?;
            let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, f);
            fill(&mut out)?;
            let f = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            f.sync_all()?;
            let meta = f.metadata()?;
            Ok::<_, io::Error>((f, meta))
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(tmp);
            TierError::io("write temporary file", tmp)(e)
        })
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

    /// Up to `need` readable keys that go first under `policy`, `exclude` left out; and the
    /// keys known to be unreadable, which are never victims.
    pub(crate) fn victims(
        &self,
        policy: EvictionPolicy,
        exclude: &str,
        need: usize,
    ) -> (Vec<(Priority, String)>, Vec<String>) {
        let mut best: Vec<(Priority, &str)> = Vec::with_capacity(need.min(self.index.len()) + 1);
        let mut unreadable = Vec::new();
        for (key, slot) in &self.index {
            let Some(p) = slot.priority(policy) else {
                if key != exclude {
                    unreadable.push(key.clone());
                }
                continue;
            };
            // Most entries lose on priority alone: compare keys only when it ties.
            let wins = best.len() < need || best.last().is_some_and(|(worst, k)| (p, key.as_str()) < (*worst, *k));
            if wins && key != exclude {
                let at = best.partition_point(|(q, k)| (*q, *k) < (p, key.as_str()));
                best.insert(at, (p, key));
                best.truncate(need);
            }
        }
        (best.into_iter().map(|(p, k)| (p, k.to_owned())).collect(), unreadable)
    }

    /// Where to read up to `limit` lines holding credential tokens: `(file, offset, len)`.
    pub(crate) fn token_lines(&self, limit: usize) -> Vec<(Arc<File>, u64, usize)> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        self.index
            .values()
            .filter(|s| s.creds && !s.is_invalid())
            .take(limit)
            .map(|s| (Arc::clone(file), s.offset, s.len))
            .collect()
    }

    fn not_locked(&self) -> TierError {
        TierError::Io {
            op: "write shard",
            path: self.path.clone(),
            source: io::Error::other("the shard is not open for writing"),
        }
    }
}

/// A shard up to this long is read whole by a rewrite (one read); a longer one line by line.
const READ_WHOLE: u64 = 64 << 20;

/// The write buffer of a rewrite's temporary file.
const WRITE_BUFFER: usize = 1 << 20;

/// Bytes `offset..offset + len` of `file` (`file_len` long) into `scratch`, if they are there.
fn read_line<'a>(file: &File, offset: u64, len: usize, file_len: u64, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    if offset.checked_add(len as u64)? > file_len {
        return None;
    }
    scratch.clear();
    scratch.resize(len, 0);
    file.read_exact_at(scratch, offset).ok()?;
    Some(scratch)
}

/// Copies `len` bytes of `file` from `offset` to `out`, [`READ_CHUNK`] at a time through
/// `chunk`.
fn copy_range(file: &File, mut offset: u64, mut len: u64, chunk: &mut Vec<u8>, out: &mut dyn Write) -> io::Result<()> {
    while len > 0 {
        let n = chunk_len(len);
        chunk.resize(n, 0);
        file.read_exact_at(&mut chunk[..n], offset)?;
        out.write_all(&chunk[..n])?;
        offset += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// Bytes `offset..offset + len` of `bytes`, if they are there.
fn span(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// Opens an existing shard for reading and appending, or only reading when that is refused.
/// Never through a symbolic link, and only a regular file (see [`private_fs::open_regular`]).
fn open_existing(path: &Path) -> io::Result<(Arc<File>, bool)> {
    match private_fs::open_regular(OpenOptions::new().read(true).append(true), path) {
        Ok(f) => Ok((Arc::new(f), true)),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(e),
        Err(_) => private_fs::open_regular(OpenOptions::new().read(true), path).map(|f| (Arc::new(f), false)),
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
    fn reading_an_unreadable_entry_takes_back_its_use() {
        let dir = tempfile::tempdir().unwrap();
        let key = (0..).map(|i| format!("k{i}")).find(|k| shard_of(k) == 3).unwrap();
        let line = format!(
            "{{\"key\": \"{key}\", \"proxy_url\": \"http://h:1\", \"source\": \"s\", \"fetch_time\": \
             \"2000-01-01T00:00:00+00:00\", \"last_accessed\": \"2000-01-01T00:00:00+00:00\", \"access_count\": 4, \
             \"ttl_seconds\": 1, \"expires_at\": \"2000-01-01T00:00:01+00:00\", \"password_encrypted\": \"zz\"}}\n"
        );
        fs::write(dir.path().join(super::super::shard_file_name(3)), line).unwrap();
        let mut shard = Shard::new(dir.path(), 3);
        shard.sync().unwrap();
        let rank = |sh: &Shard| sh.index[&key].rank().unwrap();
        let stored = rank(&shard);
        let Some(Found::Line { offset, prior, .. }) = shard.find(&key, Some(i64::MAX - 1)) else {
            panic!("the line is indexed");
        };
        assert_eq!(prior, Some(stored));
        assert_ne!(rank(&shard), stored, "a lookup records a use");
        // The lookup found the token unreadable: its use is taken back.
        assert!(shard.mark_corrupt(&key, offset, prior), "newly known");
        assert_eq!(rank(&shard), stored);
        // Once known, a lookup records nothing.
        let Some(Found::Line { prior, .. }) = shard.find(&key, Some(i64::MAX)) else {
            panic!("the line is indexed");
        };
        assert_eq!((prior, rank(&shard)), (None, stored));
        assert!(!shard.mark_corrupt(&key, offset, prior), "known already");
        let mut damage = JsonlDamage::default();
        shard.add_damage(&mut damage);
        assert_eq!(damage.corrupt_entries, 1);
    }

    #[test]
    fn micros_rounds_down() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(micros(t), -1);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_999).unwrap();
        assert_eq!(micros(t), 1);
    }

    /// Every line of `bytes` as `(offset, content length, terminator length)`, split in memory
    /// (the reader's rule: `\n`, `\r\n`, `\r`).
    fn split(bytes: &[u8]) -> Vec<(u64, usize, u8)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let (len, term) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
                Some(i) => (i, 1),
                None => (rest.len(), 0),
            };
            out.push((pos as u64, len, term as u8));
            pos += len + term;
        }
        out
    }

    /// Lines across read chunks (a `\r\n` split by a chunk's end, a `\r` last in a chunk,
    /// lines over the limit, one that runs to the end) are found where an in-memory split finds
    /// them; over-long ones are undecodable strays like the rest.
    #[test]
    fn chunked_reading_finds_the_lines_an_in_memory_split_finds() {
        let x = |n: usize| vec![b'x'; n];
        let cases: Vec<Vec<u8>> = vec![
            // `\r\n` straddling the first chunk's end.
            [x(READ_CHUNK - 1), b"\r\nab\n".to_vec()].concat(),
            // A lone `\r` last in the chunk, then a line.
            [x(READ_CHUNK - 1), b"\rcd\r\n".to_vec()].concat(),
            // An over-long line ending in `\r\n` split by a chunk's end, then more.
            [x(2 * READ_CHUNK - 1), b"\r\n".to_vec(), x(10), b"\r".to_vec()].concat(),
            // Short lines, then an over-long line that runs to the end unterminated.
            [b"a\nb\r\n".to_vec(), x(MAX_LINE_BYTES + READ_CHUNK + 7)].concat(),
            // Exactly at the limit, and one over it.
            [
                x(MAX_LINE_BYTES),
                b"\n".to_vec(),
                x(MAX_LINE_BYTES + 1),
                b"\n".to_vec(),
                x(3),
            ]
            .concat(),
            // An over-long line whose `\r` is the file's last byte.
            [x(MAX_LINE_BYTES + 1), b"\r".to_vec()].concat(),
        ];
        for (n, bytes) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut shard = Shard::new(dir.path(), 0);
            fs::write(&shard.path, bytes).unwrap();
            shard.sync().unwrap();
            let got: Vec<(u64, usize, u8)> = shard.stray.iter().map(|l| (l.offset, l.len, l.term)).collect();
            assert_eq!(got, split(bytes), "case {n}");
            assert_eq!(shard.counts.undecodable, got.len() as u64, "case {n}");
            assert_eq!(
                shard.unterminated,
                bytes.last().is_some_and(|&b| b != b'\n' && b != b'\r'),
                "case {n}"
            );
            // A rewrite carries every line over byte for byte (a missing last terminator added).
            let guard = shard.lock_exclusive().unwrap();
            shard.counts.blank = 1; // force the rewrite
            let (done, _guard) = shard.rewrite(guard, false, |_, _, _| Verdict::Keep).unwrap();
            assert_eq!(done.carried_stray, got.len() as u64);
            let mut want = bytes.clone();
            if shard_unterminated_tail(bytes) {
                want.push(b'\n');
            }
            assert_eq!(fs::read(&shard.path).unwrap(), want, "case {n}");
        }
    }

    fn shard_unterminated_tail(bytes: &[u8]) -> bool {
        bytes.last().is_some_and(|&b| b != b'\n' && b != b'\r')
    }
}
