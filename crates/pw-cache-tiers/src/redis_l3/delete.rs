//! Deletes: one entry, one entry unless written since, every entry (in chunks), every entry
//! unless written since (in chunks).

use pw_cache_model::OffsetDateTime;
use pw_cache_model::timestamp::to_unix_seconds;

use crate::error::TierError;

use super::codec::real;
use super::scripts::{SCRIPT_CHUNK, SCRIPTS};
use super::tier::RedisL3Tier;

impl RedisL3Tier {
    pub(super) fn remove(&self, key: &str) -> Result<bool, TierError> {
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let existed: i64 = self.script("delete entry", &SCRIPTS.delete, &[key])?;
        Ok(existed > 0)
    }

    pub(super) fn remove_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let since = real(to_unix_seconds(since));
        let removed: i64 = self.script("delete entry", &SCRIPTS.delete_since, &[key, &since])?;
        Ok(removed > 0)
    }

    pub(super) fn remove_all(&self) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            touches.take();
        }
        // In chunks, so that no script runs near the command timeout; the last one publishes
        // the clear. Entries put by others meanwhile may be removed too, as by one clear after.
        let chunk = SCRIPT_CHUNK.to_string();
        let mut removed = 0;
        loop {
            let (n, left): (i64, i64) = self.script("clear entries", &SCRIPTS.clear, &[&chunk])?;
            removed += usize::try_from(n).unwrap_or(0);
            if left == 0 {
                return Ok(removed);
            }
        }
    }

    pub(super) fn remove_all_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            touches.take();
        }
        let since = real(to_unix_seconds(since));
        let chunk = SCRIPT_CHUNK.to_string();
        let (mut removed, mut offset) = (0usize, 0usize);
        loop {
            let from = offset.to_string();
            let (n, kept, seen): (i64, i64, i64) =
                self.script("clear entries", &SCRIPTS.clear_since, &[&since, &chunk, &from])?;
            removed += usize::try_from(n).unwrap_or(0);
            offset += usize::try_from(kept).unwrap_or(0);
            if seen < SCRIPT_CHUNK as i64 {
                return Ok(removed);
            }
        }
    }
}
