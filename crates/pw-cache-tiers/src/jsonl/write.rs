//! The JSONL tier's changes to keys: a put (and a put if absent), recorded uses, failure
//! marks and deletes, each under the exclusive lock of the shard it changes; and clear.

use std::collections::HashSet;

use pw_cache_model::{CacheEntry, HealthStatus};

use super::line::{self, Classified};
use super::shard::{self, Found, Rank, Verdict, micros};
use super::{JsonlTier, NUM_SHARDS, encode_line, shard_of};
use crate::error::TierError;
use crate::tier::FailureMark;

impl JsonlTier {
    pub(super) fn store(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.write_entry(entry, None).map(|_| ())
    }

    /// [`CacheTier::put_if_absent_with`](crate::CacheTier::put_if_absent_with): the check,
    /// `still_below` and the append under the home shard's exclusive lock (which first catches up
    /// with other processes' writes).
    pub(super) fn store_if_absent(
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
        TierError::require_key(&entry.key)?;
        // Held in any shard (a misplaced line too): nothing to do.
        if only_if.is_some() && self.holds(&entry.key)? {
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

    pub(super) fn append_accesses(&self, records: &[pw_cache_model::AccessRecord]) -> Result<usize, TierError> {
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

    /// [`CacheTier::mark_failure`](crate::CacheTier::mark_failure): in the shard holding `key` (its
    /// home shard, else a shard holding it misplaced), under that shard's exclusive lock, which
    /// first catches up with other processes' writes: the live line is read and checked readable,
    /// then a marked line is appended (or, at `evict_at`, the shard rewritten without the key). The
    /// line appended is the line read with the two fields changed (credentials encrypted again,
    /// their values unchanged); the key's place in the eviction order does not move (a mark is not
    /// a use).
    pub(super) fn mark_entry_failed(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
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

    pub(super) fn remove(&self, key: &str) -> Result<bool, TierError> {
        let home = shard_of(key);
        let mut removed = self.remove_from(home, key)?;
        for id in self.misplaced_candidates(home).collect::<Vec<_>>() {
            removed |= self.remove_from(id, key)?;
        }
        Ok(removed)
    }

    pub(super) fn remove_all(&self) -> Result<usize, TierError> {
        let mut removed: Vec<String> = Vec::new();
        for id in 0..NUM_SHARDS {
            removed.extend(self.with_shard(id, |sh| sh.remove_file())?);
        }
        shard::sync_dir(&self.dir)?;
        let distinct: HashSet<&String> = removed.iter().collect();
        Ok(distinct.len())
    }
}

/// Whether `entry` is written with a credential token.
fn has_credentials(entry: &CacheEntry) -> bool {
    entry.username.is_some() || entry.password.is_some()
}
