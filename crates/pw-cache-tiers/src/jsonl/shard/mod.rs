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

mod file;
mod index;
mod lock;
mod slot;
mod write;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pw_cache_model::EvictionPolicy;

use super::{JsonlDamage, MIN_DEAD_LINES};
use crate::error::TierError;
use file::Ident;
pub(crate) use file::sync_dir;
use slot::{LineCounts, Priority, SlotState, Stray};
pub(crate) use slot::{Rank, Slot, micros};
#[cfg(test)]
pub(crate) use write::RenameHook;
pub(crate) use write::Verdict;

// The unit tests (`tests.rs`, `use super::*`) name these as they did when this was one file.
#[cfg(test)]
use {
    super::shard_of,
    file::READ_CHUNK,
    index::is_blank,
    pw_cache_model::{OffsetDateTime, limits::MAX_LINE_BYTES},
    std::fs,
};

/// How many times the file at the path may change under us before we give up.
const MAX_REOPEN: usize = 64;

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

    fn unstable(&self) -> TierError {
        TierError::Io {
            op: "open shard",
            path: self.path.clone(),
            source: io::Error::other("the file kept being replaced while it was opened"),
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

#[cfg(test)]
mod tests;
