//! The `flock` of a shard file, the lock proxywhirl's `portalocker` takes: taken by polling
//! until [`LOCK_TIMEOUT`], held by a [`LockGuard`].

use std::fs::{File, TryLockError};
use std::io::{self, ErrorKind};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TierError;

/// How long a lock is waited for before the operation fails (proxywhirl waits 5 s).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest pause between two attempts to take a lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(1);

/// A lock held on a shard file (exclusive or shared); released when dropped.
pub(crate) struct LockGuard {
    file: Arc<File>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the descriptor would release it too; the handle is kept, so unlock now.
        let _ = self.file.unlock();
    }
}

/// Takes a lock on `file`, polling so a stuck holder becomes an error after [`LOCK_TIMEOUT`].
pub(super) fn lock(file: &Arc<File>, path: &Path, exclusive: bool) -> Result<LockGuard, TierError> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut pause = Duration::from_micros(10);
    loop {
        // std's own `flock`-based locks: the same locks as fs4's and Python's portalocker.
        let attempt = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match attempt {
            Ok(()) => return Ok(LockGuard { file: Arc::clone(file) }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(MAX_LOCK_PAUSE);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(TierError::Io {
                    op: "lock shard",
                    path: path.to_owned(),
                    source: io::Error::new(
                        ErrorKind::TimedOut,
                        format!("the lock was held by another process for {} s", LOCK_TIMEOUT.as_secs()),
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(TierError::io("lock shard", path)(e)),
        }
    }
}
