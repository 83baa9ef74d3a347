//! The crate's one lock-poison policy. A std lock is poisoned when a thread panicked while
//! holding it. Every lock of this crate guards either
//! - data that one call replaces or updates in one step (a pool slot, a thread handle, a map of
//!   pending hits): a panicking holder cannot have left it half-updated, so it is used as it is
//!   ([`lock`], [`read`], [`write`]); or
//! - a shard's index, which a panic may leave half-updated (the memory tier's intrusive lists,
//!   a JSONL shard's index): its owner resets it instead (`memory::shard::lock` empties the
//!   shard, the JSONL tier re-reads the shard file), and clears the poison.
//!
//! Nothing else in the crate calls `lock()`, `read()` or `write()` on a std lock and unwraps it.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, using its data as it is if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, using its data as it is if a holder panicked.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, using its data as it is if a holder panicked.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
