//! Cache keys: how a proxy URL becomes the key every tier stores it under.

use sha2::{Digest, Sha256};

/// Length of a generated cache key, in hex characters.
pub const CACHE_KEY_LEN: usize = 16;

/// The reference's cache key of a proxy URL: the first 16 hex characters of the SHA-256 of the
/// URL's UTF-8 bytes (`hashlib.sha256(url.encode()).hexdigest()[:16]`).
///
/// ```
/// assert_eq!(pw_cache_model::generate_cache_key("http://1.2.3.4:8080"), "fe229370330820fe");
/// ```
pub fn generate_cache_key(proxy_url: &str) -> String {
    let digest = Sha256::digest(proxy_url.as_bytes());
    let mut key = format!("{digest:x}");
    key.truncate(CACHE_KEY_LEN);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_prefix() {
        // sha256("") = e3b0c442 98fc1c14 ...
        assert_eq!(generate_cache_key(""), "e3b0c44298fc1c14");
        assert_eq!(generate_cache_key("x").len(), CACHE_KEY_LEN);
    }
}
