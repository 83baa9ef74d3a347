//! One line of a shard: an entry as proxywhirl's `JsonlCacheTier` writes it, credentials as
//! lowercase hex of their Fernet token bytes.
//!
//! [`encode_line`] writes the line byte for byte as proxywhirl 0.3.3 does
//! (`json.dumps(data)`, the reference's field order); [`decode_line`] reads it back, decrypting
//! the credentials. The index of a shard uses [`classify`], which parses a line without
//! decrypting anything and says what it is (an entry, an entry that cannot be read, a JSON value
//! that is no entry, or no JSON at all).
//!
//! # Reading what proxywhirl reads
//!
//! proxywhirl reads a line with `json.loads`, turns string timestamps into datetimes with
//! `datetime.fromisoformat`, and builds `CacheEntry(**data)` with pydantic v2 in lax mode. So a
//! line it reads is one we read, with the rules of `pw_cache_model::lax`: integers written as
//! `"5"` or `5.0` or `true`, booleans as `"yes"`, `"off"`, `1`, `0.0`, timestamps as Unix seconds
//! (milliseconds above 2e10) as well as isoformat strings, and a member repeated in the object
//! (the last one wins, as in `json.loads`). The reference bounds every count with `ge=0` except
//! `access_count`: a negative `access_count` reads as 0, a count above `u64::MAX` as `u64::MAX`,
//! each reported by a warning that names the key and the field (never a credential); a negative
//! bounded count, which pydantic refuses, leaves the entry unreadable, as everything proxywhirl
//! fails to read does.
//!
//! What serde_json refuses but `json.loads` reads is read from a rewritten copy of the line
//! (the stored line never changes; a line serde_json reads pays nothing for it):
//! - an integer literal beyond `u64` (or below `i64::MIN`), which serde_json would hand over as
//!   a float, in an integer member reads as Python's `int` does: `2**64 + 5` in `access_count`
//!   reads as `u64::MAX`, reported as above (a float literal that large stays refused, as
//!   pydantic refuses it);
//! - a lone surrogate escape (`"\ud800"`), which a Python `str` holds and no Rust string can,
//!   reads as U+FFFD, reported by a warning naming the key and the member;
//! - `NaN`, `Infinity`, `-Infinity` (and a number beyond a float, `1e400`) in a member of the
//!   entry make it an unreadable entry of its key, as pydantic refuses them in every field (in
//!   a member the entry does not have they are ignored, as pydantic ignores it).
//!
//! Credentials: a `*_encrypted` member that is a non-empty string is hex (either case, ASCII
//! whitespace between bytes, as `bytes.fromhex`) of a token (read as Python's `cryptography`
//! reads it: see `pw_cache_crypto::KeyRing::decrypt_bytes`); one that Python finds false
//! (absent, `null`, `""`, `false`, `0`, `[]`, `{}`) is no credential, and then a `username` or
//! `password` member in plaintext is the credential, as `CacheEntry(**data)` takes it (a
//! string; anything else makes the entry unreadable). A line holding a plaintext credential is
//! reported once (the field, never the value); we never write one.
//!
//! Limits: a lone surrogate in the key makes another key (U+FFFD in its place), which may then
//! be misplaced (found in a shard other than its md5 shard); an integer of more than 4300
//! digits, on which `json.loads` raises, leaves the line undecodable.

mod credentials;
mod decode;
mod encode;
mod hex;
mod relax;

pub(crate) use credentials::{credentials_open, stored_tokens};
pub use decode::decode_line;
pub(crate) use decode::{Classified, classify, into_entry};
pub use encode::encode_line;
pub(crate) use hex::stored_hex_decode;
pub use hex::{hex_decode, hex_encode};

// The unit tests (`tests.rs`, `use super::*`) name these as they did when this was one file.
#[cfg(test)]
use {
    crate::error::TierError,
    decode::{ENTRY_MEMBERS, LineIn},
    pw_cache_crypto::KeyRing,
    pw_cache_model::{CacheEntry, Secret},
};

#[cfg(test)]
mod tests;
