//! The JSONL tier's lookups: the entry of a key (its home shard first, then the shards that
//! may hold it misplaced), whether a key is held, every key, the size, and a sample of the
//! stored credential tokens.

use std::collections::HashSet;

use pw_cache_model::CacheEntry;

use super::line::{self, Classified};
use super::shard::Found;
use super::{JsonlTier, NUM_SHARDS, shard_of};
use crate::error::TierError;

impl JsonlTier {
    /// The entry under `key`; `used` records the read as a use (for eviction).
    pub(super) fn lookup(&self, key: &str, used: bool) -> Result<Option<CacheEntry>, TierError> {
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

    pub(super) fn holds(&self, key: &str) -> Result<bool, TierError> {
        let home = shard_of(key);
        for id in std::iter::once(home).chain(self.misplaced_candidates(home)) {
            if self.with_shard(id, |sh| sh.sync().map(|()| sh.contains(key)))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every key, each once.
    pub(super) fn all_keys(&self) -> Result<Vec<String>, TierError> {
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

    pub(super) fn count_entries(&self) -> Result<usize, TierError> {
        self.sync_all()?;
        if self.any_misplaced() {
            return self.all_keys().map(|k| k.len());
        }
        Ok((0..NUM_SHARDS).map(|id| self.with_shard(id, |sh| sh.len())).sum())
    }

    /// [`CacheTier::credential_sample`](crate::CacheTier::credential_sample): tokens of lines that
    /// hold some, a line per shard in turn, read from the lines the index points at (no shard is
    /// read whole).
    pub(super) fn sample_tokens(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
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
}
