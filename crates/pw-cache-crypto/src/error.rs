//! [`CryptoError`]: every way a key or a token can be unusable. No variant carries key
//! material, plaintext or a token's bytes.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a key came from: named in every error about that key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `CacheConfig::encryption_key`.
    Config,
    /// The `index`-th key (0-based) given to [`crate::KeyRing::from_secrets`]; 0 is the current.
    Explicit {
        /// Position in the list given.
        index: usize,
    },
    /// The environment variable [`crate::ENV_CURRENT_KEY`].
    EnvCurrent,
    /// The `index`-th key (1-based) of [`crate::ENV_PREVIOUS_KEYS`] (comma separated).
    EnvPrevious {
        /// Position in the variable, from 1.
        index: usize,
    },
    /// A line of a key file.
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => f.write_str("the configured encryption_key"),
            KeySource::Explicit { index: 0 } => f.write_str("the explicit current key"),
            KeySource::Explicit { index } => write!(f, "explicit previous key #{index}"),
            KeySource::EnvCurrent => write!(f, "environment variable {}", crate::ENV_CURRENT_KEY),
            KeySource::EnvPrevious { index } => {
                write!(f, "environment variable {} (key {index})", crate::ENV_PREVIOUS_KEYS)
            }
            KeySource::KeyFile { path, line } => write!(f, "key file {}, line {line}", path.display()),
        }
    }
}

/// Why a token cannot even be tried against a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Empty input.
    Empty,
    /// Not url-safe base64 with canonical padding (or not ASCII at all).
    NotBase64,
    /// Shorter than the smallest Fernet token (73 bytes decoded).
    TooShort {
        /// Decoded length.
        len: usize,
    },
    /// The first byte is not the Fernet version 0x80.
    BadVersion {
        /// The byte found.
        version: u8,
    },
    /// The ciphertext is not a whole number of AES blocks.
    NotBlockAligned,
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenProblem::Empty => f.write_str("empty"),
            TokenProblem::NotBase64 => f.write_str("not url-safe base64"),
            TokenProblem::TooShort { len } => write!(f, "{len} bytes, shorter than any Fernet token (73)"),
            TokenProblem::BadVersion { version } => write!(f, "version byte {version:#04x}, expected 0x80"),
            TokenProblem::NotBlockAligned => f.write_str("ciphertext is not a whole number of 16-byte blocks"),
        }
    }
}

/// A key or token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A key that is not 32 bytes of url-safe base64. Names the source, never echoes the key.
    #[error(
        "invalid Fernet key from {origin}: {reason} (a key is 32 random bytes in url-safe base64, \
         44 characters; generate one with `python -c 'from cryptography.fernet import Fernet; \
         print(Fernet.generate_key().decode())'`)"
    )]
    InvalidKey {
        /// Where the key came from.
        origin: KeySource,
        /// What is wrong with it (no key material).
        reason: String,
    },
    /// A token that is not shaped like a Fernet token.
    #[error("malformed credential token: {0}")]
    MalformedToken(TokenProblem),
    /// A well-formed token that no key of the ring authenticates: written under a key the ring
    /// does not hold, or altered. Count it as corruption.
    #[error("no key of the ring opens this credential token (unknown key or tampered token)")]
    TokenRejected,
    /// Older than the TTL given to [`crate::KeyRing::decrypt_with_ttl`].
    #[error("credential token issued at {issued} is older than its TTL of {ttl_seconds} s")]
    TokenExpired {
        /// Unix seconds the token was made.
        issued: u64,
        /// The TTL checked.
        ttl_seconds: u64,
    },
    /// Stamped further in the future than the allowed clock skew.
    #[error("credential token issued at {issued} is stamped too far in the future")]
    TokenFromTheFuture {
        /// Unix seconds the token claims.
        issued: u64,
    },
    /// A token that authenticates but whose plaintext is not UTF-8.
    #[error("credential token decrypts to bytes that are not UTF-8")]
    NotUtf8,
    /// The key file could not be read or written.
    #[error("key file {}: {source}", path.display())]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A path the key file's code refuses to use: its directory or the file itself is owned by
    /// another user, writable by others, a symbolic link, not a regular file, or too large
    /// (see [`crate::trust`]).
    #[error(transparent)]
    Untrusted(#[from] crate::trust::TrustError),
    /// The key file holds no key line.
    #[error("key file {} holds no key", path.display())]
    EmptyKeyFile {
        /// The file.
        path: PathBuf,
    },
}

impl CryptoError {
    /// Whether the error is about stored data (a token), as opposed to configuration: the
    /// caller counts these as a corrupt entry.
    pub fn is_corrupt_token(&self) -> bool {
        matches!(
            self,
            CryptoError::MalformedToken(_)
                | CryptoError::TokenRejected
                | CryptoError::NotUtf8
                | CryptoError::TokenExpired { .. }
                | CryptoError::TokenFromTheFuture { .. }
        )
    }
}
