//! The entries' health columns: a failure mark ([`crate::CacheTier::mark_failure`]) and the
//! health-check detail ([`crate::CacheTier::health_detail`]).

use pw_cache_model::{HealthDetail, HealthStatus};

use super::row::{Columns, count_param};
use super::statements::Layout;
use super::store::Store;
use crate::entry_codec::{Field, decode_health_detail};
use crate::error::TierError;
use crate::tier::FailureMark;

impl Store {
    /// [`CacheTier::mark_failure`] in one `BEGIN IMMEDIATE` transaction, which holds the
    /// database's write lock from the read to the commit: the row is read and checked readable
    /// (every value fits its field, every token opens; an unreadable row is left untouched and
    /// reported as the lookup reports it), then its two columns are updated (`failure_count` to
    /// the count read plus one, `health_status` to `unhealthy`; no other column, `updated_at`
    /// neither), or the row is deleted when that count reaches `evict_at`. No other writer of the
    /// file, in this process or another, can come between the read and the write. The count is
    /// written as read plus one rather than `failure_count + 1` in SQL: the value read is the
    /// one the lax reader took from the row (a proxywhirl file may hold `'3'` or `3.0`).
    pub(crate) fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let mark = self.write("mark failure", |tx| {
            let Some(stored) = self.read(tx, key)? else {
                return Ok(FailureMark::Absent);
            };
            // Decrypted only to check it opens; the plaintext is dropped (zeroized) at once.
            let failure_count = stored.open(&self.ring)?.failure_count.saturating_add(1);
            let s = self.layout.statements();
            if evict_at.is_some_and(|at| failure_count >= at) {
                tx.prepare_cached(s.delete)
                    .and_then(|mut stmt| stmt.execute([key]))
                    .map_err(self.err("mark failure"))?;
                return Ok(FailureMark::Evicted { failure_count });
            }
            tx.prepare_cached(s.mark_failure)
                .and_then(|mut stmt| {
                    stmt.execute(rusqlite::params![
                        key,
                        count_param(failure_count),
                        HealthStatus::Unhealthy.as_str()
                    ])
                })
                .map_err(self.err("mark failure"))?;
            Ok(FailureMark::Marked { failure_count })
        });
        if let Err(e) = &mark
            && e.is_corrupt_entry()
        {
            tracing::warn!(key, path = %self.path.display(), error = %e, "unreadable entry in cache database");
        }
        let mark = mark?;
        if matches!(mark, FailureMark::Evicted { .. })
            && let Some(touches) = &self.touches
        {
            touches.forget(key);
        }
        Ok(mark)
    }

    /// The health-check detail under `key` (L3's table only; L2's has none).
    pub(crate) fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        if self.layout == Layout::L2 {
            return Ok(self.peek(key)?.map(|e| HealthDetail::of(&e)));
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(self.layout.statements().health_detail)
            .map_err(self.err("read health detail"))?;
        let mut rows = stmt.query([key]).map_err(self.err("read health detail"))?;
        let Some(row) = rows.next().map_err(self.err("read health detail"))? else {
            return Ok(None);
        };
        decode_health_detail(&Columns::starting_at(row, key, Field::LastHealthCheck)).map(Some)
    }
}
