//! Locking helpers shared by the manager's modules.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A set of values found by their cache key (`T: Borrow<str>`), hashed as the rest of the
/// manager hashes keys (foldhash, seeded at random per set).
pub(crate) type KeyedSet<T> = std::collections::HashSet<T, RandomState>;

/// Locks a mutex, ignoring poisoning. Every mutex of this crate guards data that a single call
/// updates (a flag, a counter, a map or set insert/remove), so a holder that panicked cannot
/// have left it half-updated.
pub(crate) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
