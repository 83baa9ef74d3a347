//! Recording uses: the get hits a bounded LRU or LFU tier notes and writes in batches, and
//! the uses the manager records ([`crate::CacheTier::record_accesses`]). See
//! [`crate::sqlite`], "Eviction".

use std::collections::HashMap;

use pw_cache_model::AccessRecord;
use pw_cache_model::timestamp::{self, to_unix_seconds};
use rusqlite::Connection;

use super::row::count_param;
use super::statements::Layout;
use super::store::Store;
use crate::error::TierError;
use crate::touches::Touch;

/// Get hits noted in memory before they are written (bounded LRU and LFU tiers).
pub const TOUCH_BATCH: usize = 256;

impl Store {
    /// Writes `batch`, hits noted in memory, on `conn` (in the caller's transaction).
    pub(super) fn apply_touches(&self, conn: &Connection, batch: HashMap<String, Touch>) -> Result<(), TierError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut stmt = conn
            .prepare_cached(self.layout.statements().touch)
            .map_err(self.err("record hits"))?;
        for (key, t) in &batch {
            stmt.execute(rusqlite::params![key, t.last, count_param(t.hits)])
                .map_err(self.err("record hits"))?;
        }
        Ok(())
    }

    /// Writes the hits noted so far.
    pub(crate) fn flush_touches(&self) -> Result<(), TierError> {
        match &self.touches {
            Some(touches) => {
                let batch = touches.take();
                if batch.is_empty() {
                    return Ok(());
                }
                self.write("record hits", |tx| self.apply_touches(tx, batch))
            }
            None => Ok(()),
        }
    }

    /// Records the uses in `records` in one transaction (see [`CacheTier::record_accesses`]);
    /// how many rows changed.
    pub(crate) fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        if records.is_empty() {
            return Ok(0);
        }
        let updated_at = to_unix_seconds(timestamp::now_utc());
        self.write("record uses", |tx| {
            let mut stmt = tx
                .prepare_cached(self.layout.statements().record_access)
                .map_err(self.err("record uses"))?;
            let mut changed = 0;
            for r in records {
                let (key, count, last) = (&r.key, count_param(r.access_count), to_unix_seconds(r.last_accessed));
                let evicted = i64::from(r.evicted_from_l1);
                changed += match self.layout {
                    Layout::L2 => stmt.execute(rusqlite::params![key, count, last, evicted]),
                    Layout::L3 => stmt.execute(rusqlite::params![key, count, last, evicted, updated_at]),
                }
                .map_err(self.err("record uses"))?;
            }
            Ok(changed)
        })
    }
}
