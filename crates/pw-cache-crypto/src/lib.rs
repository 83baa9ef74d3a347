//! # pw-cache-crypto
//!
//! The layer that owns every key and every token of pw-cache. Credentials of cached proxies
//! are encrypted at rest (L2, L3) as [Fernet](https://github.com/fernet/spec) tokens,
//! interchangeable both ways with proxywhirl 0.3.3 (Python `cryptography`'s `MultiFernet`).
//!
//! - [`FernetKey`]: one validated key, zeroized on drop.
//! - [`KeyRing`]: the current key and any number of previous ones; [`KeyRing::encrypt`],
//!   [`KeyRing::decrypt`] (every key, current first), [`KeyRing::rotate`] (re-encrypt under the
//!   current key, keeping the token's timestamp, as `MultiFernet.rotate`).
//! - [`KeyRing::resolve`]: the ring of a cache from the configured key, else the environment
//!   ([`ENV_CURRENT_KEY`], [`ENV_PREVIOUS_KEYS`]), else a key file created 0600 next to the
//!   cache ([`key_file`]) — so, unlike the reference, a cache with no configured key can read
//!   after a restart what it wrote before.
//! - [`trust`]: the checks on the directories and the key file a cache uses (owner, mode,
//!   file type, size): [`Trust`] relaxes the mode check of directories, never the owner check.
//! - [`Token`]: a stored token, shape-checked; [`CryptoError`]: typed failures that never hold
//!   key material or plaintext.
//!
//! ## Non-goals
//! This crate does not decide what is encrypted (the tiers encrypt usernames and passwords;
//! URLs and sources stay plaintext), nor how a token is laid out on disk (hex in JSONL, BLOB in
//! SQLite: each tier's module). It offers no TTL on tokens: cache expiry is the entry's
//! `expires_at`, not the token's age.

#![forbid(unsafe_code)]

mod error;
mod key;
pub mod key_file;
pub mod private_fs;
mod ring;
mod sources;
mod token;
pub mod trust;

pub use error::{CryptoError, KeySource, TokenProblem};
pub use key::FernetKey;
pub use key_file::{DEFAULT_KEY_FILE_NAME, MAX_KEY_FILE_BYTES};
pub use ring::{KeyOrigin, KeyRing, MAX_CLOCK_SKEW_SECONDS};
pub use sources::{ENV_CURRENT_KEY, ENV_PREVIOUS_KEYS, EnvKeys};
pub use token::Token;
pub use trust::{Trust, TrustError};
