//! The longest text each field of a [`CacheEntry`] may hold: the one definition every backend
//! enforces, on write (an oversized entry is refused, nothing stored) and on read (an oversized
//! stored value makes its entry unreadable, and is not loaded).
//!
//! Every value is far above what any real proxy needs, and far below what would hurt: a stored
//! value is read by every lookup, copied into the upper tiers and into memory, so one huge
//! value (a 64 MB field written by a broken or hostile client) would otherwise stall every host
//! that reads it and grow each by its size. All sizes are in bytes of UTF-8 (of the text as
//! stored, for tokens).
//!
//! | field | limit | why |
//! |---|---|---|
//! | `key` | [`MAX_KEY_BYTES`] = 512 | a generated key is 16 hex characters; a caller's own key is a name, not a document; the key is also part of every storage key and event |
//! | `proxy_url` | [`MAX_PROXY_URL_BYTES`] = 2,048 | `scheme://host:port` is under 300 bytes even with a long host name (DNS names stop at 253); 2,048 is the usual bound of URLs |
//! | `source` | [`MAX_SOURCE_BYTES`] = 1,024 | a list's name or a provider's URL |
//! | `last_health_error` | [`MAX_LAST_HEALTH_ERROR_BYTES`] = 4,096 | an error message, chains of TLS or proxy errors included |
//! | `username`, `password` (plaintext) | [`MAX_CREDENTIAL_BYTES`] = 4,096 | provider user names with session and zone options run to a few hundred bytes, a token-like password (a JWT) to 1–2 KB |
//! | a stored credential token | [`MAX_CREDENTIAL_TOKEN_BYTES`] = 5,560 | the length of the Fernet token of a [`MAX_CREDENTIAL_BYTES`] credential ([`fernet_token_len`]): every credential within its limit encrypts to a token within this one |
//!
//! An entry at every limit at once is under 25 KB: a tier of 100,000 such entries still fits
//! in a few GB, and one read of it stays far below a millisecond of transfer.
//!
//! Lines of files (JSONL shards, warm files) are bounded by [`MAX_LINE_BYTES`] = 1 MiB when
//! read: a longer line is skipped (and counted) without being held in memory whole. It is
//! derived from the field limits: an entry's JSON line holds its text fields once each (the key,
//! the URL, the source, the health error, two credentials or their tokens), each at most six
//! times its length when every byte is escaped (`\u00XX`), plus numbers, timestamps and field
//! names (under 2 KB): [`MAX_ENTRY_LINE_BYTES`], about 120 KB. 1 MiB is more than 8 times that,
//! so no line this library writes is ever refused by it, and a hostile 2 GB line costs at most
//! 1 MiB of memory to skip.
//!
//! A `.json` warm file, parsed whole, is bounded by [`MAX_WARM_JSON_BYTES`] = 64 MiB.

use crate::entry::CacheEntry;
use crate::fields;

/// Longest key.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest proxy URL.
pub const MAX_PROXY_URL_BYTES: usize = 2048;
/// Longest source name.
pub const MAX_SOURCE_BYTES: usize = 1024;
/// Longest last health-check error message.
pub const MAX_LAST_HEALTH_ERROR_BYTES: usize = 4096;
/// Longest credential (user name or password), as plaintext.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;
/// Longest stored credential token (the Fernet token's text): that of the longest credential.
pub const MAX_CREDENTIAL_TOKEN_BYTES: usize = fernet_token_len(MAX_CREDENTIAL_BYTES);

/// Longest proxy URL as given with credentials in it (`scheme://user:pass@host:port`, as a warm
/// file may carry them): the stored URL's limit, and each credential percent-encoded (3 bytes
/// per byte at most) with its `:` and `@`.
pub const MAX_PROXY_URL_WITH_CREDENTIALS_BYTES: usize = MAX_PROXY_URL_BYTES + 2 * 3 * MAX_CREDENTIAL_BYTES + 2;

/// A bound on the length of the JSON line of any entry within the field limits (each text
/// field escaped at six bytes per byte, tokens in place of credentials, and 2 KB for the rest).
pub const MAX_ENTRY_LINE_BYTES: usize = 6
    * (MAX_KEY_BYTES
        + MAX_PROXY_URL_BYTES
        + MAX_SOURCE_BYTES
        + MAX_LAST_HEALTH_ERROR_BYTES
        + 2 * MAX_CREDENTIAL_TOKEN_BYTES)
    + 2048;

/// The longest health-history record read back (its JSON form in Redis, its text columns in
/// SQLite): the proxy's key, the check URL (a proxy URL's limit) and the error message (the
/// health error's limit), each escaped at six bytes per byte, and 1 KB for the numbers and
/// names. A longer record is refused on write and unreadable on read (named by its id).
pub const MAX_HEALTH_RECORD_BYTES: usize =
    6 * (MAX_KEY_BYTES + MAX_PROXY_URL_BYTES + MAX_LAST_HEALTH_ERROR_BYTES) + 1024;

/// The longest line read from a file (a JSONL shard, a line or CSV record of a warm file): 1 MiB,
/// more than 8 times [`MAX_ENTRY_LINE_BYTES`]. A longer line is skipped and counted as
/// unreadable; reading past it holds at most this much of it in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

const _: () = assert!(8 * MAX_ENTRY_LINE_BYTES < MAX_LINE_BYTES);

/// The largest `.json` warm file read: 64 MiB. A JSON array must be parsed whole to know it is
/// valid (which `check_warm_file` promises before anything is stored), so the document is held
/// in memory whole; a larger one is refused by its size before it is read. JSONL and CSV warm
/// files are read a line at a time and have no size limit: big lists belong there.
pub const MAX_WARM_JSON_BYTES: u64 = 64 << 20;

/// The length of the text of a Fernet token of a `plaintext_len`-byte plaintext: the version
/// (1 byte), the timestamp (8), the IV (16), the AES-CBC ciphertext with PKCS#7 padding (the
/// plaintext rounded up to the next multiple of 16, a whole block more when it is one already)
/// and the HMAC (32), in padded base64.
pub const fn fernet_token_len(plaintext_len: usize) -> usize {
    let raw = 1 + 8 + 16 + (plaintext_len / 16 + 1) * 16 + 32;
    raw.div_ceil(3) * 4
}

/// A text field of an entry longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// The field's name (`key`, `proxy_url`, `username`, `password`, `source`,
    /// `last_health_error`).
    pub field: &'static str,
    /// Its length in bytes.
    pub len: usize,
    /// Its limit in bytes.
    pub limit: usize,
}

impl std::fmt::Display for Oversized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {} bytes long, more than its limit of {} bytes",
            self.field, self.len, self.limit
        )
    }
}

/// The first text field of `entry` (in the order of the table above) longer than its limit,
/// or `None` when every one fits. Names the field and lengths only: never a credential.
pub fn first_oversized(entry: &CacheEntry) -> Option<Oversized> {
    let credential = |secret: &Option<crate::Secret>| secret.as_ref().map_or(0, |s| s.expose_secret().len());
    [
        (fields::KEY, entry.key.len(), MAX_KEY_BYTES),
        (fields::PROXY_URL, entry.proxy_url.len(), MAX_PROXY_URL_BYTES),
        (fields::SOURCE, entry.source.len(), MAX_SOURCE_BYTES),
        (
            fields::LAST_HEALTH_ERROR,
            entry.last_health_error.as_ref().map_or(0, String::len),
            MAX_LAST_HEALTH_ERROR_BYTES,
        ),
        (fields::USERNAME, credential(&entry.username), MAX_CREDENTIAL_BYTES),
        (fields::PASSWORD, credential(&entry.password), MAX_CREDENTIAL_BYTES),
    ]
    .into_iter()
    .find(|&(_, len, limit)| len > limit)
    .map(|(field, len, limit)| Oversized { field, len, limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn token_length_matches_the_fernet_layout() {
        // 0 bytes: one block of padding; 57 + 16 = 73 raw bytes, 100 characters of base64.
        assert_eq!(fernet_token_len(0), 100);
        assert_eq!(fernet_token_len(15), 100);
        assert_eq!(fernet_token_len(16), 120);
        assert_eq!(MAX_CREDENTIAL_TOKEN_BYTES, 5560);
    }

    #[test]
    fn the_first_oversized_field_is_named_without_its_value() {
        let mut e = CacheEntry::new("http://1.2.3.4:8080", "s", 60).unwrap();
        assert_eq!(first_oversized(&e), None);
        e.password = Some(Secret::new("p".repeat(MAX_CREDENTIAL_BYTES)));
        assert_eq!(first_oversized(&e), None, "at the limit is within it");
        e.password = Some(Secret::new("p".repeat(MAX_CREDENTIAL_BYTES + 1)));
        let over = first_oversized(&e).unwrap();
        assert_eq!((over.field, over.len, over.limit), (fields::PASSWORD, 4097, 4096));
        assert!(!over.to_string().contains("ppp"), "{over}");
        e.source = "s".repeat(MAX_SOURCE_BYTES + 1);
        assert_eq!(first_oversized(&e).unwrap().field, fields::SOURCE);
    }
}
