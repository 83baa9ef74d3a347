//! Building the index of a shard and keeping it current: [`Shard::sync`] and
//! [`Shard::lock_exclusive`] check the file at the path, and read only the tail another process
//! appended, or the whole file when it was replaced; each line is classified as it is read.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use pw_cache_crypto::private_fs;
use pw_cache_model::limits::MAX_LINE_BYTES;

use super::file::{Ident, chunk_len, line_end, open_existing};
use super::lock::{LockGuard, lock};
use super::slot::{LineCounts, Rank, Slot, SlotState, Stray, micros};
use super::{MAX_REOPEN, Shard};
use crate::error::TierError;
use crate::jsonl::line::{self, Classified};
use crate::jsonl::shard_of;

impl Shard {
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
    /// Reads [`READ_CHUNK`](super::file::READ_CHUNK) bytes at a time and holds at most one chunk
    /// and one line: a line longer than [`MAX_LINE_BYTES`] is not held whole but read past with a
    /// bounded buffer and counted as an undecodable (stray) line, its offset and length kept so
    /// rewrites carry it over byte for byte.
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
    pub(super) fn insert(&mut self, key: String, slot: Slot) {
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
    pub(super) fn remove(&mut self, key: &str) {
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
}

/// Whether a line is skipped as blank by the reference (`not line.strip()`).
pub(super) fn is_blank(content: &[u8]) -> bool {
    match content.first() {
        None => true,
        Some(b'{') => false,
        Some(_) => std::str::from_utf8(content)
            .is_ok_and(|s| s.chars().all(|c| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}'))),
    }
}
