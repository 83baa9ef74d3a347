//! What a tier is told about an entry without being given the whole entry again: the use the
//! layer above saw ([`AccessRecord`]) and the health-check detail ([`HealthDetail`]).

use time::OffsetDateTime;

use crate::entry::CacheEntry;

/// The use of an entry seen by the layer above a tier (L1), to be recorded by the tier:
/// `access_count` and `last_accessed` as L1 had them, and whether L1 evicted the entry.
///
/// Applying a record changes those three fields only, and only when the stored
/// `last_accessed` is not later than the record's (a record never winds back a newer copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// The entry's key.
    pub key: String,
    /// The entry's use count.
    pub access_count: u64,
    /// The entry's last use.
    pub last_accessed: OffsetDateTime,
    /// Whether L1 evicted the entry (set, never cleared, by a record).
    pub evicted_from_l1: bool,
}

impl AccessRecord {
    /// The record of `entry`'s use as it stands.
    pub fn of(entry: &CacheEntry, evicted_from_l1: bool) -> Self {
        Self {
            key: entry.key.clone(),
            access_count: entry.access_count,
            last_accessed: entry.last_accessed,
            evicted_from_l1,
        }
    }

    /// Applies the record to `entry` (of the same key); whether it changed anything. A record
    /// older than the entry's last use is ignored.
    pub fn apply_to(&self, entry: &mut CacheEntry) -> bool {
        if entry.last_accessed > self.last_accessed {
            return false;
        }
        let changed = entry.access_count != self.access_count
            || entry.last_accessed != self.last_accessed
            || (self.evicted_from_l1 && !entry.evicted_from_l1);
        entry.access_count = self.access_count;
        entry.last_accessed = self.last_accessed;
        entry.evicted_from_l1 |= self.evicted_from_l1;
        changed
    }
}

/// The eight health-check detail fields of an entry (the columns proxywhirl's `l2_cache` table
/// lacks and `cache_entries` has).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthDetail {
    /// Time of the last health check.
    pub last_health_check: Option<OffsetDateTime>,
    /// Failed checks in a row.
    pub consecutive_health_failures: u64,
    /// Passed checks in a row.
    pub consecutive_health_successes: u64,
    /// Recovery attempts so far.
    pub recovery_attempt: u64,
    /// When the next check is due.
    pub next_check_time: Option<OffsetDateTime>,
    /// The last check's error.
    pub last_health_error: Option<String>,
    /// Checks in all.
    pub total_health_checks: u64,
    /// Failed checks in all.
    pub total_health_check_failures: u64,
}

impl HealthDetail {
    /// The detail of `entry`.
    pub fn of(entry: &CacheEntry) -> Self {
        Self {
            last_health_check: entry.last_health_check,
            consecutive_health_failures: entry.consecutive_health_failures,
            consecutive_health_successes: entry.consecutive_health_successes,
            recovery_attempt: entry.recovery_attempt,
            next_check_time: entry.next_check_time,
            last_health_error: entry.last_health_error.clone(),
            total_health_checks: entry.total_health_checks,
            total_health_check_failures: entry.total_health_check_failures,
        }
    }

    /// Sets `entry`'s eight detail fields to this.
    pub fn apply_to(self, entry: &mut CacheEntry) {
        entry.last_health_check = self.last_health_check;
        entry.consecutive_health_failures = self.consecutive_health_failures;
        entry.consecutive_health_successes = self.consecutive_health_successes;
        entry.recovery_attempt = self.recovery_attempt;
        entry.next_check_time = self.next_check_time;
        entry.last_health_error = self.last_health_error;
        entry.total_health_checks = self.total_health_checks;
        entry.total_health_check_failures = self.total_health_check_failures;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn entry() -> CacheEntry {
        CacheEntry::new("http://1.2.3.4:80", "fetched", 3600).unwrap()
    }

    #[test]
    fn a_record_sets_use_and_never_clears_the_eviction_flag() {
        let mut e = entry();
        let mut rec = AccessRecord::of(&e, true);
        rec.access_count = 7;
        rec.last_accessed = e.last_accessed + Duration::seconds(5);
        assert!(rec.apply_to(&mut e));
        assert_eq!(
            (e.access_count, e.last_accessed, e.evicted_from_l1),
            (7, rec.last_accessed, true)
        );
        let later = AccessRecord {
            evicted_from_l1: false,
            ..rec.clone()
        };
        assert!(!later.apply_to(&mut e));
        assert!(e.evicted_from_l1);
    }

    #[test]
    fn an_older_record_changes_nothing() {
        let mut e = entry();
        let mut rec = AccessRecord::of(&e, true);
        rec.access_count = 9;
        rec.last_accessed = e.last_accessed - Duration::seconds(1);
        assert!(!rec.apply_to(&mut e));
        assert_eq!((e.access_count, e.evicted_from_l1), (0, false));
    }

    #[test]
    fn health_detail_round_trips() {
        let mut e = entry();
        e.total_health_checks = 4;
        e.last_health_error = Some("timeout".into());
        e.last_health_check = Some(e.fetch_time);
        let detail = HealthDetail::of(&e);
        let mut other = entry();
        detail.clone().apply_to(&mut other);
        assert_eq!(HealthDetail::of(&other), detail);
    }
}
