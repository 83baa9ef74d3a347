//! # pw-cache-crypto
//!
//! The layer that owns every key and every token of pw-cache: credentials of cached proxies are
//! encrypted at rest (L2, L3) as Fernet tokens, readable by proxywhirl 0.3.3's
//! `cryptography`-based `CredentialEncryptor` and back.
//!
//! ## Status
//! This crate is the skeleton of the layer (issue 3 fills it): it builds, it depends only on
//! [`pw_cache_model`], and it exports nothing yet. What it will hold:
//! - a key ring (one current key, any number of previous keys) from explicit keys, the
//!   environment (`PROXYWHIRL_CACHE_ENCRYPTION_KEY`, `PROXYWHIRL_CACHE_KEY_PREVIOUS`) or a key
//!   file created 0600 next to the cache;
//! - `encrypt`, `decrypt` (trying every key) and `rotate` (keeping the token's timestamp);
//! - typed errors for bad keys and unreadable tokens that never echo key material.
//!
//! ## Non-goals
//! It never decides *what* is encrypted (the tiers do) and never stores entries.

#![forbid(unsafe_code)]
