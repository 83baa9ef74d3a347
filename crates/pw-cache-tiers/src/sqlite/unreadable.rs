//! Rows that cannot be read (see the crate docs, "Unreadable entries"): the check cleanup and
//! eviction make before touching a row, the count of rows they left in place, and the
//! operator's explicit removal.

use std::sync::atomic::Ordering;

use rusqlite::Row;
use rusqlite::types::ValueRef;

use super::row::read_row;
use super::store::Store;
use crate::error::TierError;

impl Store {
    /// Whether a row of a statement that selects the `get` columns can be read: every value
    /// fits its field and every credential token opens with the ring (the plaintext is dropped,
    /// and zeroized, at once).
    pub(super) fn row_is_readable(&self, row: &Row<'_>) -> bool {
        let key = match row.get_ref(0) {
            Ok(ValueRef::Text(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => return false,
        };
        read_row(row, self.layout, &key)
            .and_then(|stored| stored.open(&self.ring))
            .is_ok()
    }

    /// Counts unreadable rows met and left in place.
    pub(super) fn note_unreadable_skipped(&self, n: u64) {
        if n > 0 {
            self.unreadable_skipped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Unreadable rows cleanup and eviction met and left in place since the tier opened.
    pub(crate) fn unreadable_skipped(&self) -> u64 {
        self.unreadable_skipped.load(Ordering::Relaxed)
    }

    /// The operator's removal of every unreadable row (see [`CacheTier::remove_unreadable`]),
    /// in one write transaction; how many.
    pub(crate) fn remove_unreadable(&self) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            self.flush_touches()?;
            touches.take();
        }
        let s = self.layout.statements();
        self.write("remove unreadable entries", |tx| {
            let mut doomed = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(s.all_rows)
                    .map_err(self.err("remove unreadable entries"))?;
                let mut rows = stmt.query([]).map_err(self.err("remove unreadable entries"))?;
                while let Some(row) = rows.next().map_err(self.err("remove unreadable entries"))? {
                    if !self.row_is_readable(row) {
                        let rowid: i64 = row
                            .get(self.layout.rowid_column())
                            .map_err(self.err("remove unreadable entries"))?;
                        doomed.push(rowid);
                    }
                }
            }
            let mut stmt = tx
                .prepare_cached(s.delete_rowid)
                .map_err(self.err("remove unreadable entries"))?;
            let mut removed = 0;
            for rowid in doomed {
                removed += stmt.execute([rowid]).map_err(self.err("remove unreadable entries"))?;
            }
            Ok(removed)
        })
    }
}
