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
    /// A directory the tier would use cannot be trusted: owned by another user, or writable by
    /// group or others (see [`pw_cache_crypto::trust`]). Nothing in it was read or changed.
    #[error(transparent)]
    Untrusted(#[from] pw_cache_crypto::TrustError),
    /// The entry cannot be stored as given (e.g. an empty key).
    #[error("invalid entry {key:?}: {reason}")]
    InvalidEntry {
        /// The entry's key.
        key: String,
        /// Why it cannot be stored.
        reason: String,
    },
    /// A SQLite operation failed: the database cannot be opened, read or written (busy past
    /// the timeout, damaged file, read-only directory, full disk ...).
    #[error("{op} {}: {source}", path.display())]
    Sqlite {
        /// What was being done (`open database`, `read entry`, `write entry` ...).
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error. It names the failing statement's problem, never a bound value.
        #[source]
        source: rusqlite::Error,
    },
    /// No connection to the database could be had from the pool in time.
    #[error("no connection to {}: {source}", path.display())]
    Pool {
        /// The database file.
        path: PathBuf,
        /// The pool's error.
        #[source]
        source: r2d2::Error,
    },
    /// The database does not have the tables this tier needs, or was written by a newer
    /// pw-cache (a schema version this one does not know); for the Redis L3, its indexes are
    /// damaged and a rebuild did not repair them (`path` is then `redis pwc:{ns}`).
    #[error("database {} has an unusable schema: {reason}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tier was closed ([`crate::SqliteL2Tier::close`], [`crate::SqliteL3Tier::close`]).
    #[error("tier on {} is closed", path.display())]
    Closed {
        /// The database file.
        path: PathBuf,
    },
    /// A remote store (the Redis L3 tier) could not be reached, timed out, or refused a
    /// command: no connection within the connect timeout, no answer within the command
    /// timeout, a refused password, a server error. `reason` never holds the server's URL or
    /// a password.
    #[error("{op}: {reason}")]
    Remote {
        /// What was being done (`connect`, `read entry`, `write entry` ...).
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The server cannot run this tier: the Redis L3 needs Redis 7.0 or newer
    /// (`redis_l3::MIN_REDIS_VERSION`). Reported by `open`.
    #[error("unsupported server: {reason}")]
    UnsupportedServer {
        /// What the server lacks: its version and the one needed.
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
    /// `key` for an error message: whole when within `MAX_KEY_BYTES`, else its first bytes (an
    /// over-long key is not repeated in full).
    pub(crate) fn shown_key(key: &str) -> String {
        if key.len() <= pw_cache_model::limits::MAX_KEY_BYTES {
            return key.to_owned();
        }
        let mut end = 64;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &key[..end])
    }

    /// Refuses an empty key ([`TierError::InvalidEntry`]): the check every backend makes
    /// before it stores an entry.
    pub(crate) fn require_key(key: &str) -> Result<(), TierError> {
        if key.is_empty() {
            return Err(TierError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        Ok(())
    }

    /// Whether this error says the tier itself is failing (I/O, a database that cannot be
    /// used, a closed tier, an unreachable remote store), as opposed to one bad entry or bad
    /// input. Only these count towards degradation. A SQLite constraint violation is bad input
    /// (e.g. a health check for a key that has no entry), not a failing tier.
    pub fn is_tier_failure(&self) -> bool {
        match self {
            TierError::Io { .. }
            | TierError::Pool { .. }
            | TierError::Schema { .. }
            | TierError::Closed { .. }
            | TierError::Remote { .. }
            | TierError::UnsupportedServer { .. } => true,
            TierError::Sqlite { source, .. } => {
                source.sqlite_error_code() != Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            _ => false,
        }
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
