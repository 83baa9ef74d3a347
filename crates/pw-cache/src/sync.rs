//! Locking helpers shared by the manager's modules, and this crate's one lock-poison policy.
//!
//! # Poisoned locks
//!
//! A std lock is poisoned when a thread panics while holding it. Every mutex of this crate
//! guards data that a single call updates (a flag, a counter, a map or set insert or remove, a
//! thread handle), so a holder that panicked cannot have left it half-updated: a poisoned lock
//! is used as it is. Every lock and wait of this crate goes through the helpers below ([`lock`],
//! [`try_lock`], [`wait_while`], [`wait_timeout_while`]), which say so once; no other code
//! unwraps or inspects a `PoisonError`.

use std::hash::BuildHasher;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use foldhash::fast::RandomState;

/// A set of values found by their cache key (`T: Borrow<str>`), hashed as the rest of the
/// manager hashes keys (foldhash, seeded at random per set).
pub(crate) type KeyedSet<T> = std::collections::HashSet<T, RandomState>;

/// Locks `m`, waiting for it; a poisoned lock is used as it is (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `m` if no one holds it; `None` when someone does. A poisoned lock is used as it is.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::WouldBlock) => None,
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
    }
}

/// Waits on `wake` while `condition` holds ([`Condvar::wait_while`]); a poisoned lock is used
/// as it is.
pub(crate) fn wait_while<'a, T>(
    wake: &Condvar,
    guard: MutexGuard<'a, T>,
    condition: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    wake.wait_while(guard, condition)
        .unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `wake` while `condition` holds, `timeout` at most
/// ([`Condvar::wait_timeout_while`]); a poisoned lock is used as it is.
pub(crate) fn wait_timeout_while<'a, T>(
    wake: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
    condition: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    wake.wait_timeout_while(guard, timeout, condition)
        .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard)
}

/// `T` split over several mutexes; a key's is chosen by a hash of the key, so threads working
/// on different keys rarely wait for each other.
pub(crate) struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
    hasher: RandomState,
}

impl<T: Default> Sharded<T> {
    /// `count` shards (at least one), each `T::default()`.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            shards: (0..count.max(1)).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
        }
    }
}

impl<T> Sharded<T> {
    /// The shard of `key`.
    pub(crate) fn for_key(&self, key: &str) -> &Mutex<T> {
        // The remainder is below the shard count, itself a usize: the cast is lossless.
        &self.shards[(self.hasher.hash_one(key) % self.shards.len() as u64) as usize]
    }

    /// Every shard.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shards.iter()
    }
}
