//! [`TierError`]: what a tier operation can fail with, typed so the manager can tell a miss
//! (`Ok(None)`) from a failure (I/O, counted towards degradation) from a corrupt entry (counted
//! as a corruption eviction).

use std::io;
use std::path::PathBuf;

use pw_cache_crypto::CryptoError;

/// A failed tier operation. Never holds a credential, a key or a token.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The stored entry under `key` cannot be read back: damaged record, or a credential token
    /// that no key of the ring opens. Not a failure of the tier itself.
    #[error("entry {key:?} is corrupt: {reason}")]
    Corrupt {
        /// The entry's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential could not be encrypted or decrypted for `key`.
    #[error("entry {key:?}: {source}")]
    Crypto {
        /// The entry's key.
        key: String,
        /// The crypto failure.
        #[source]
        source: CryptoError,
    },
    /// The storage could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read shard`, `lock`, `rename` ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The entry cannot be stored as given (e.g. an empty key).
    #[error("invalid entry {key:?}: {reason}")]
    InvalidEntry {
        /// The entry's key.
        key: String,
        /// Why it cannot be stored.
        reason: String,
    },
    /// The tier disabled itself after repeated failures (see [`crate::TierHealth`]).
    #[error("tier disabled after {failures} consecutive failures")]
    Disabled {
        /// Consecutive failures seen.
        failures: u32,
    },
}

impl TierError {
    /// Whether this error says the tier itself is failing (I/O), as opposed to one bad entry
    /// or bad input. Only these count towards degradation.
    pub fn is_tier_failure(&self) -> bool {
        matches!(self, TierError::Io { .. })
    }

    /// Whether this error says one stored entry is unreadable (count it as corruption).
    pub fn is_corrupt_entry(&self) -> bool {
        match self {
            TierError::Corrupt { .. } => true,
            TierError::Crypto { source, .. } => source.is_corrupt_token(),
            _ => false,
        }
    }

    /// Shorthand for an [`TierError::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> TierError {
        let path = path.into();
        move |source| TierError::Io { op, path, source }
    }
}
