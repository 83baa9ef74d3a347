#![doc = include_str!("../README.md")]
//!
//! ## Contents
//!
//! - [`FernetKey`]: one validated key, zeroized on drop.
//! - [`KeyRing`]: the current key and any number of previous ones; [`KeyRing::encrypt`],
//!   [`KeyRing::decrypt`] (every key, current first), [`KeyRing::rotate`] (re-encrypt under the
//!   current key, keeping the token's timestamp, as `MultiFernet.rotate`).
//! - [`KeyRing::resolve`]: the ring of a cache from the configured key, else the environment
//!   ([`ENV_CURRENT_KEY`], [`ENV_PREVIOUS_KEYS`]), else a key file created 0600 next to the
//!   cache ([`key_file`]).
//! - [`trust`]: the checks on the directories and the key file a cache uses (owner, mode,
//!   file type, size): [`Trust`] relaxes the mode check of directories, never the owner check.
//! - [`Token`]: a stored token, shape-checked; [`CryptoError`]: typed failures that never hold
//!   key material or plaintext.
//! - [`Secret`]: the model layer's secret text (re-exported from `pw-cache-model`), which
//!   [`KeyRing::encrypt`] takes and [`KeyRing::decrypt`] returns.
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
pub use ring::{KeyOrigin, KeyRing, MAX_CLOCK_SKEW_SECONDS, SampleCheck};
pub use sources::{ENV_CURRENT_KEY, ENV_PREVIOUS_KEYS, EnvKeys};
pub use token::Token;
pub use trust::{Trust, TrustError};

/// The secret text this crate encrypts and decrypts, from the model layer: re-exported so that a
/// crate depending on `pw-cache-crypto` alone can call every function here.
#[doc(no_inline)]
pub use pw_cache_model::Secret;
