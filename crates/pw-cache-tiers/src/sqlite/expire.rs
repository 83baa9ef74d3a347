//! Expiry cleanup: deleting the readable entries whose time is up, without undoing a put made
//! meanwhile.

use pw_cache_model::OffsetDateTime;
use pw_cache_model::timestamp::to_unix_seconds;
use rusqlite::types::ValueRef;

use super::store::Store;
use crate::error::TierError;

impl Store {
    /// Deletes every readable entry expired at `now` (`expires_at <= now`). The expired rows
    /// are read (and their tokens checked) outside the write lock; each is then deleted only if
    /// it is still expired and holds the same tokens, so a put meanwhile is never undone.
    /// Unreadable rows are left in place and counted (see the crate docs, "Unreadable entries").
    pub(crate) fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = to_unix_seconds(now);
        let s = self.layout.statements();
        // Each expired readable row: its rowid and its two tokens as read.
        type Expired = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
        let mut doomed: Vec<Expired> = Vec::new();
        let mut skipped = 0;
        {
            let conn = self.conn()?;
            let mut stmt = conn
                .prepare_cached(s.expired)
                .map_err(self.err("delete expired entries"))?;
            let mut rows = stmt.query([now]).map_err(self.err("delete expired entries"))?;
            while let Some(row) = rows.next().map_err(self.err("delete expired entries"))? {
                if !self.row_is_readable(row) {
                    skipped += 1;
                    continue;
                }
                let value = |i: usize| match row.get_ref(i) {
                    Ok(ValueRef::Blob(b) | ValueRef::Text(b)) => Some(b.to_vec()),
                    _ => None,
                };
                let rowid: i64 = row
                    .get(self.layout.rowid_column())
                    .map_err(self.err("delete expired entries"))?;
                doomed.push((rowid, value(2), value(3)));
            }
        }
        self.note_unreadable_skipped(skipped);
        if doomed.is_empty() {
            return Ok(0);
        }
        self.write("delete expired entries", |tx| {
            let mut stmt = tx
                .prepare_cached(s.delete_expired_rowid)
                .map_err(self.err("delete expired entries"))?;
            let mut deleted = 0;
            for (rowid, username, password) in &doomed {
                deleted += stmt
                    .execute(rusqlite::params![rowid, now, username, password])
                    .map_err(self.err("delete expired entries"))?;
            }
            Ok(deleted)
        })
    }
}
