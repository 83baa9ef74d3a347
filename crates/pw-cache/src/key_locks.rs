//! Per-key locks: what makes an operation on one key atomic across the tiers without holding
//! any lock across the disk I/O of another key.
//!
//! A table of sharded maps from key to a small lock (a flag and a condition variable). The
//! shard's mutex is held only to find or insert the key's lock, never across I/O; the key's
//! lock is held for the whole operation on that key. An entry leaves the table when its last
//! user releases it, so the table holds only the keys in use.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::sync::{Sharded, relock};

/// Shards of the table.
const SHARDS: usize = 64;

#[derive(Default)]
struct KeyLock {
    held: Mutex<bool>,
    released: Condvar,
}

/// The table of per-key locks: key to its lock, sharded.
pub(crate) struct KeyLocks {
    shards: Sharded<HashMap<Box<str>, Arc<KeyLock>>>,
}

/// Holds the lock of one key until dropped.
pub(crate) struct KeyGuard<'a> {
    table: &'a KeyLocks,
    key: &'a str,
    lock: Arc<KeyLock>,
}

impl KeyLocks {
    pub(crate) fn new() -> Self {
        Self {
            shards: Sharded::new(SHARDS),
        }
    }

    /// Waits for and takes the lock of `key`.
    pub(crate) fn lock<'a>(&'a self, key: &'a str) -> KeyGuard<'a> {
        let lock = {
            let mut map = relock(self.shards.for_key(key));
            match map.get(key) {
                Some(lock) => Arc::clone(lock),
                None => {
                    let lock = Arc::new(KeyLock::default());
                    map.insert(key.into(), Arc::clone(&lock));
                    lock
                }
            }
        };
        let mut held = relock(&lock.held);
        while *held {
            held = lock.released.wait(held).unwrap_or_else(PoisonError::into_inner);
        }
        *held = true;
        drop(held);
        KeyGuard { table: self, key, lock }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        *relock(&self.lock.held) = false;
        self.lock.released.notify_one();
        let mut map = relock(self.table.shards.for_key(self.key));
        // Two references: the table's and ours. Any other holder or waiter has its own clone,
        // taken under this shard's mutex, so the count cannot grow while we hold it.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn one_holder_per_key_and_the_table_empties() {
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
        assert!(locks.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }

    #[test]
    fn different_keys_do_not_wait_for_each_other() {
        let locks = KeyLocks::new();
        let _a = locks.lock("a");
        // Would deadlock if "b" waited for "a".
        let _b = locks.lock("b");
    }
}
