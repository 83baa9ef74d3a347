//! Health marks ([`CacheTier::mark_failure`]): read the entry, check it is readable, then one
//! script that counts the failure (and evicts at the threshold) only if the entry is still the
//! version read.

use crate::entry_codec::UPDATED_AT;
use crate::error::TierError;
#[cfg(doc)]
use crate::tier::CacheTier;
use crate::tier::FailureMark;

use super::codec::Fields;
use super::scripts::MARK_FAILURE_SCRIPT;
use super::tier::RedisL3Tier;

/// Reads and scripts a health mark tries before giving up, when the entry changes (a put or a
/// recorded use by another host) between each read and its script.
pub(super) const MARK_ATTEMPTS: usize = 32;

impl RedisL3Tier {
    /// [`CacheTier::mark_failure`]: reads the entry (`HGETALL`), checks that it can be read
    /// (every field, every token: an unreadable entry is left untouched and reported as a
    /// lookup reports it), then runs [`MARK_FAILURE_LUA`](super::scripts::MARK_FAILURE_LUA)
    /// with the `updated_at` read, which refuses if the entry changed in between; then reads and
    /// tries again, up to [`MARK_ATTEMPTS`] times.
    pub(super) fn mark_entry_failed(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let name = self.names.entry(key);
        let evict_at = evict_at.map(|n| n.to_string()).unwrap_or_default();
        for _ in 0..MARK_ATTEMPTS {
            let flat: Vec<Vec<u8>> =
                self.run("read entry", Some(key), |c| redis::cmd("HGETALL").arg(&name).query(c))?;
            if flat.is_empty() {
                return Ok(FailureMark::Absent);
            }
            let hash = Fields::new(key, &flat);
            // The decrypted entry is dropped (zeroized) at once: only its readability matters.
            if let Err(e) = hash.entry(&self.ring) {
                tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
                return Err(e);
            }
            let stamp = hash.text_of(UPDATED_AT).ok().flatten().unwrap_or_default();
            let reply: Vec<i64> = self.script("mark failure", &MARK_FAILURE_SCRIPT, &[key, &stamp, &evict_at])?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            match reply.as_slice() {
                [0] => return Ok(FailureMark::Absent),
                [1, n] => {
                    return Ok(FailureMark::Marked {
                        failure_count: count(*n),
                    });
                }
                [2, n] => {
                    if let Some(touches) = &self.touches {
                        touches.forget(key);
                    }
                    return Ok(FailureMark::Evicted {
                        failure_count: count(*n),
                    });
                }
                // Changed since the read: read it again.
                [3] => {}
                [4] => {
                    return Err(TierError::InvalidEntry {
                        key: key.to_owned(),
                        reason: "failure_count is not an integer Redis can increment (or is at its maximum)".to_owned(),
                    });
                }
                _ => {
                    return Err(TierError::Remote {
                        op: "mark failure",
                        reason: format!("unexpected reply from the mark script: {reply:?}"),
                    });
                }
            }
        }
        Err(TierError::Remote {
            op: "mark failure",
            reason: format!("the entry changed between the read and the mark {MARK_ATTEMPTS} times in a row"),
        })
    }
}
