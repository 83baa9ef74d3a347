//! [`Secret`]: a credential held in memory, zeroized on drop, never shown.

use std::fmt;

use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the reference writes in place of every credential in JSON output.
pub const MASK: &str = "***";

/// A credential (proxy username or password, or a key) held in memory.
///
/// - Zeroized on drop (it wraps [`secrecy::SecretString`]).
/// - `Debug` and `Display` print `***`; serde serialization writes `"***"` (the reference's
///   mask), so an entry dumped to JSON never carries the value.
/// - There is no `Deserialize`: reading a credential from untrusted JSON is always an explicit
///   decision of the format that owns it (see [`crate::entry`]).
/// - The only way to read the value is [`Secret::expose_secret`], so every use is greppable.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value. A `String` without spare capacity is moved in; one with spare capacity
    /// is copied into an exact-size allocation and zeroized (`SecretString` holds a `Box<str>`,
    /// and shrinking the `String` in place would hand its old block, value included, back to
    /// the allocator unzeroized).
    pub fn new(value: impl Into<String>) -> Self {
        let mut value = value.into();
        if value.capacity() == value.len() {
            return Self(SecretString::from(value.into_boxed_str()));
        }
        let exact: Box<str> = Box::from(value.as_str());
        value.zeroize();
        Self(SecretString::from(exact))
    }

    /// The plaintext. Call it only where the value is really needed (encryption, the proxy
    /// connection); never pass the result to a formatter, a log or an error.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes of the value (does not reveal it).
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose_secret().is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl PartialEq for Secret {
    /// Compares the values in time independent of where they differ.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.expose_secret().as_bytes(), other.expose_secret().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// Serde helpers for an `Option<Secret>` field in the reference's JSON (export lines, warm
/// files): `null` or absent is no credential; the mask `"***"` is "a credential existed but
/// was not written", which reads as no credential known (never as the secret `***`); any other
/// string is the credential itself.
pub mod masked_option {
    use super::*;

    /// Writes `"***"` when set, `null` when not.
    pub fn serialize<S: Serializer>(value: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => secret.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null`/absent and `"***"` as `None`, any other string as the credential.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
        let raw = Option::<String>::deserialize(deserializer)?;
        Ok(match raw {
            Some(s) if s == MASK => None,
            Some(s) => Some(Secret::from(s)),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose_secret(), "hunter2");
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(Secret::new("a"), Secret::new("a"));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
        assert!(Secret::new("").is_empty());
    }
}
