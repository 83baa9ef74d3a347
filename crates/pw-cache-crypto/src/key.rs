//! [`FernetKey`]: one validated Fernet key, zeroized on drop.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use pw_cache_model::Secret;
use zeroize::Zeroizing;

use crate::error::{CryptoError, KeySource};

/// One Fernet key: 16 bytes of HMAC-SHA256 signing key and 16 bytes of AES-128 key.
///
/// Zeroized on drop (both our copy and `fernet`'s); `Debug` shows no key material.
#[derive(Clone)]
pub struct FernetKey {
    /// On the heap, so that moving a key (a `Vec` of keys growing, a key returned by value)
    /// copies a pointer, never the key: a moved-from heap block would be freed unzeroized.
    raw: Zeroizing<Box<[u8]>>,
    pub(crate) fernet: fernet::Fernet,
}

impl FernetKey {
    /// Parses a key: url-safe base64 of 32 bytes, padded (`=`) or not, surrounding white
    /// space ignored. The error names `origin` and never contains the text.
    pub fn parse(text: &str, origin: KeySource) -> Result<Self, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidKey {
            origin: origin.clone(),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| invalid("it is not url-safe base64".to_owned()))?,
        );
        let raw: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("it decodes to {} bytes, not 32", decoded.len())))?;
        Ok(Self::from_raw(Zeroizing::new(raw)))
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> Self {
        let text = Zeroizing::new(fernet::Fernet::generate_key());
        #[allow(clippy::expect_used, reason = "fernet's generate_key always returns a valid key")]
        Self::parse(&text, KeySource::Explicit { index: 0 }).expect("generated key is valid")
    }

    fn from_raw(raw: Zeroizing<[u8; 32]>) -> Self {
        let text = Zeroizing::new(URL_SAFE.encode(raw.as_slice()));
        // 32 bytes in url-safe base64 is exactly what `Fernet::new` accepts.
        #[allow(clippy::expect_used, reason = "a 32-byte key always makes a Fernet; not reachable")]
        let fernet = fernet::Fernet::new(&text).expect("32-byte key");
        Self {
            raw: Zeroizing::new(Box::from(raw.as_slice())),
            fernet,
        }
    }

    /// The key as url-safe base64 (44 characters), to store it: a [`Secret`].
    pub fn to_base64(&self) -> Secret {
        Secret::new(URL_SAFE.encode(&self.raw[..]))
    }
}

impl PartialEq for FernetKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw
            .iter()
            .zip(other.raw.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for FernetKey {}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    #[test]
    fn parses_padded_unpadded_and_trimmed() {
        let a = FernetKey::parse(KEY, KeySource::Config).unwrap();
        let b = FernetKey::parse(KEY.trim_end_matches('='), KeySource::Config).unwrap();
        let c = FernetKey::parse(&format!("  {KEY}\n"), KeySource::Config).unwrap();
        assert!(a == b && b == c);
        assert_eq!(a.to_base64().expose_secret(), KEY);
    }

    #[test]
    fn rejects_bad_keys_naming_the_source_not_the_key() {
        for (text, reason) in [
            ("", "empty"),
            ("not base64 !!", "not url-safe base64"),
            ("c2hvcnQ=", "decodes to 5 bytes"),
            ("cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=", "not url-safe base64"),
        ] {
            let err = FernetKey::parse(text, KeySource::EnvCurrent).unwrap_err().to_string();
            assert!(
                err.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY") && err.contains(reason),
                "{err}"
            );
            if !text.is_empty() {
                assert!(!err.contains(text), "error echoes the key: {err}");
            }
        }
    }

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let (a, b) = (FernetKey::generate(), FernetKey::generate());
        assert_ne!(a, b);
        assert_eq!(
            FernetKey::parse(a.to_base64().expose_secret(), KeySource::Config).unwrap(),
            a
        );
        assert_eq!(format!("{a:?}"), "FernetKey(***)");
    }
}
