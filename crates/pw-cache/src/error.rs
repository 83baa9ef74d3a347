//! [`ManagerError`]: what the manager's operations can fail with.

use std::io;
use std::path::PathBuf;

use pw_cache_crypto::CryptoError;
use pw_cache_model::CacheTierType;
use pw_cache_tiers::TierError;

use crate::warm_file::WarmFileError;

/// A failed manager operation. Like every error of this workspace it never holds a credential,
/// a key or a token.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No usable key ring: a configured or environment key is malformed, or the key file cannot
    /// be read or created. The source names the key's origin or the file.
    #[error("cannot set up the encryption keys: {0}")]
    Keys(#[source] CryptoError),
    /// No key of the ring opens any of the credential tokens sampled from the tiers: the key is
    /// not the one these credentials were written with (mistyped, from another cache, or a key
    /// file generated anew). Refused before any entry was read or written; see
    /// [`crate::KeyCheck`] to open anyway.
    #[error(
        "the encryption key does not open this cache's credentials: no key of the ring (the current key from          {origin}, {previous} previous) opens any of the {sampled} credential tokens sampled from {tiers}. Nothing          was read or written. Use the key these credentials were written with (or list it in          PROXYWHIRL_CACHE_KEY_PREVIOUS), or open anyway (KeyCheck::Skip): unreadable entries are then left in place,          never removed"
    )]
    WrongKey {
        /// Where the current key came from (a variable's name, the config, a path).
        origin: String,
        /// How many previous keys the ring has.
        previous: usize,
        /// Tokens sampled.
        sampled: usize,
        /// The tiers sampled (`L2 and L3` ...).
        tiers: String,
    },
    /// The configured key opens none of the sampled credential tokens, but the key file's key
    /// (which would silently become a previous key behind it) does: most likely the configured
    /// key is mistyped. Refused unless the key is new on purpose ([`crate::KeyCheck::NewKey`]).
    #[error(
        "the key from {origin} opens none of the {sampled} credential tokens sampled from {tiers}; they open only          with the key in {}, which would become a previous key behind it. If {origin} holds a new key you are          rotating to, say so (KeyCheck::NewKey, or `rotate-key --new-key`); otherwise check it for a typo",
        key_file.display()
    )]
    KeyFileKeyOnly {
        /// Where the current key came from.
        origin: String,
        /// The key file whose key opens the tokens.
        key_file: PathBuf,
        /// Tokens sampled.
        sampled: usize,
        /// The tiers sampled.
        tiers: String,
    },
    /// The config selects a Redis L3, but this build of pw-cache lacks its `redis` feature.
    #[error("l3_backend is redis, but pw-cache was built without its `redis` cargo feature")]
    RedisFeatureMissing,
    /// A Redis L3 is shared by hosts, but this host would encrypt with a key it just generated
    /// (no key configured), which no other host has.
    #[error(
        "a Redis L3 is shared by every host: configure the key (encryption_key or \
         PROXYWHIRL_CACHE_ENCRYPTION_KEY, the same on every host) instead of the key file generated at {}",
        key_file.display()
    )]
    SharedKeyRequired {
        /// The key file this host generated.
        key_file: PathBuf,
    },
    /// A tier could not be opened (directory or database unusable).
    #[error("cannot open the {tier} tier: {source}")]
    OpenTier {
        /// Which tier.
        tier: CacheTierType,
        /// Why.
        #[source]
        source: TierError,
    },
    /// The entry cannot be stored as given.
    #[error("invalid entry {key:?}: {reason}")]
    InvalidEntry {
        /// The entry's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// `put_with_key` was given a key that is not the entry's own.
    #[error("the key argument {argument:?} is not the entry's key {entry_key:?}")]
    KeyMismatch {
        /// The key argument.
        argument: String,
        /// `entry.key`.
        entry_key: String,
    },
    /// No tier stored the entry (each enabled tier failed or was degraded).
    #[error("entry {key:?} was stored in no tier: {}", failures.join("; "))]
    NotStored {
        /// The entry's key.
        key: String,
        /// Why each tier did not store it.
        failures: Vec<String>,
    },
    /// A flush or close could not write everything; each failure names the key or tier.
    #[error("{op} incomplete: {}", failures.join("; "))]
    Incomplete {
        /// `flush` or `close`.
        op: &'static str,
        /// What failed.
        failures: Vec<String>,
    },
    /// The manager was closed.
    #[error("the cache manager is closed")]
    Closed,
    /// A TTL outside `1..=MAX_TTL_SECONDS`.
    #[error("ttl {value} is out of bounds: must be 1..={max}")]
    InvalidTtl {
        /// The TTL given.
        value: u64,
        /// The largest TTL accepted.
        max: u64,
    },
    /// A tier could not be read completely for an export (the file was not written).
    #[error("cannot export: the {tier} tier cannot list its keys: {source}")]
    ExportTier {
        /// Which tier.
        tier: CacheTierType,
        /// Why.
        #[source]
        source: TierError,
    },
    /// A tier could not list its keys, so it could not be inspected or rotated.
    #[error("cannot list the keys of the {tier} tier: {source}")]
    ListKeys {
        /// Which tier.
        tier: CacheTierType,
        /// Why.
        #[source]
        source: TierError,
    },
    /// The export file could not be written (nothing was replaced at `path`).
    #[error("cannot write export file {}: {source}", path.display())]
    Export {
        /// The export file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The warm file as a whole cannot be used (missing, unsupported extension, not a JSON
    /// array, no `proxy_url` column ...). Bad rows are not errors: they are reported.
    #[error(transparent)]
    Warm(#[from] WarmFileError),
}
