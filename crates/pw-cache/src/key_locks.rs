//! Per-key locks: what makes an operation on one key atomic across the tiers without holding
//! any lock across the disk I/O of another key (bar a rare shared stripe, below).
//!
//! Lock striping: keys hash (foldhash, seeded per manager at random) onto [`STRIPES`] mutexes, and an
//! operation on a key holds its stripe's mutex for the whole operation. Taking a key lock is
//! one hash and one uncontended mutex, with no allocation (the hit path of the manager takes
//! one per get). Two keys may share a stripe: an operation on one then waits for the other,
//! one chance in [`STRIPES`] per pair of concurrent operations. That is never a deadlock,
//! because no code holds two key locks at once (checked in debug builds), except
//! [`KeyLocks::lock_all`], which takes every stripe in one fixed order, holding no other.

use std::sync::MutexGuard;

use crate::sync::{Sharded, lock};

/// Mutexes keys are striped over.
pub(crate) const STRIPES: usize = 1024;

#[cfg(debug_assertions)]
thread_local! {
    /// Whether this thread holds a key lock (taking a second could deadlock on a shared stripe).
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The striped locks.
pub(crate) struct KeyLocks {
    stripes: Sharded<()>,
}

/// Holds the lock of one key until dropped.
pub(crate) struct KeyGuard<'a> {
    _stripe: MutexGuard<'a, ()>,
}

impl KeyLocks {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Sharded::new(STRIPES),
        }
    }

    /// Waits for, then holds, the lock of `key`.
    pub(crate) fn lock<'a>(&'a self, key: &'a str) -> KeyGuard<'a> {
        #[cfg(debug_assertions)]
        HOLDING.with(|h| {
            assert!(!h.get(), "a key lock was taken while this thread held another");
            h.set(true);
        });
        KeyGuard {
            _stripe: lock(self.stripes.for_key(key)),
        }
    }

    /// Waits for, then holds, the lock of every key: in stripe order, and only by a thread
    /// holding no key lock, so it cannot deadlock. For what must not interleave with any
    /// operation on any key (emptying L1 while a lookup could promote a copy from below).
    pub(crate) fn lock_all(&self) -> AllKeysGuard<'_> {
        #[cfg(debug_assertions)]
        HOLDING.with(|h| {
            assert!(!h.get(), "every key lock was asked for while this thread held one");
            h.set(true);
        });
        AllKeysGuard {
            _stripes: self.stripes.iter().map(lock).collect(),
        }
    }

    #[cfg(test)]
    fn stripe_of(&self, key: &str) -> *const std::sync::Mutex<()> {
        self.stripes.for_key(key)
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HOLDING.with(|h| h.set(false));
    }
}

/// Holds every key's lock until dropped ([`KeyLocks::lock_all`]).
pub(crate) struct AllKeysGuard<'a> {
    _stripes: Vec<MutexGuard<'a, ()>>,
}

impl Drop for AllKeysGuard<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HOLDING.with(|h| h.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn one_holder_per_key() {
        let locks = KeyLocks::new();
        let inside = AtomicUsize::new(0);
        let max_inside = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        let _g = locks.lock("k");
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_inside.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn keys_spread_over_the_stripes() {
        let locks = KeyLocks::new();
        let stripes: std::collections::HashSet<_> = (0..4096).map(|i| locks.stripe_of(&format!("key-{i}"))).collect();
        // 4096 keys over 1024 stripes: all but a few stripes are used (expected ~1005).
        assert!(stripes.len() > 950, "{}", stripes.len());
    }

    #[test]
    fn a_second_lock_on_one_thread_is_refused_in_debug_builds() {
        let locks = KeyLocks::new();
        let outcome = thread::scope(|s| {
            s.spawn(|| {
                let _a = locks.lock("a");
                let _b = locks.lock("b");
            })
            .join()
        });
        assert_eq!(outcome.is_err(), cfg!(debug_assertions));
    }
}
