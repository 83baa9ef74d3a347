//! The credentials of a line as the reference reads them: a `*_encrypted` member (the hex of a
//! token, or a value Python finds false), a plaintext `username` / `password` member when the
//! encrypted one is false, and which of them wins ([`credential`]); and the checks that need
//! only the tokens of a line (whether they open with the ring, the stored tokens).

use std::borrow::Cow;
use std::fmt;

use pw_cache_crypto::KeyRing;
use pw_cache_model::Secret;
use serde::de::{self, IgnoredAny, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

use super::decode::{Classified, classify};
use super::stored_hex_decode;
use crate::error::TierError;

/// Whether the stored hex `hex` of a credential token reads with `ring` (the plaintext is
/// dropped, zeroized, at once). Hex of no bytes (only whitespace) reads: as `""`.
pub(super) fn token_opens(hex: &str, ring: &KeyRing) -> bool {
    stored_hex_decode(hex).is_some_and(|bytes| bytes.is_empty() || ring.decrypt_bytes(&bytes).is_ok())
}

/// A credential member in plaintext (`"username": "alice"`), as pydantic reads it for a
/// `SecretStr | None` field: a string; `null` is no credential (the member is `None`);
/// anything else is refused when the reference would take the member.
pub(crate) enum Plain {
    /// A string.
    Text(Secret),
    /// Not a string: what it is ("a number", ...).
    NotAString(&'static str),
}

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a credential in plaintext")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Plain, E> {
        Ok(Plain::Text(Secret::new(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Plain, E> {
        Ok(Plain::Text(Secret::new(v)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Plain, E> {
        Ok(Plain::NotAString("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Plain::NotAString("an array (or NaN, Infinity)"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Plain::NotAString("an object"))
    }
}

/// Reads a credential token member (`username_encrypted`, `password_encrypted`) as the
/// reference tests it: a string (hex, decoded later; `""` is no credential), or a value Python
/// finds false (`null`, `false`, `0`, `0.0`, `[]`, `{}`), which is no credential either: the
/// reference leaves it in the data, where pydantic ignores it. Any other value (`true`, `5`, a
/// non-empty array or object) is refused: the reference fails on it (`bytes.fromhex` of a
/// value that is not a string).
pub(super) fn token_member<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    deserializer.deserialize_any(TokenMemberVisitor)
}

struct TokenMemberVisitor;

impl<'de> Visitor<'de> for TokenMemberVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hex of a token, or a value Python finds false (null, false, 0, [], {})")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        } else {
            Ok(None)
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if v == 0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Signed(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if v == 0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Unsigned(v), &self))
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v == 0.0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(None),
            Some(_) => Err(de::Error::invalid_type(Unexpected::Seq, &self)),
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(None),
            Some(_) => Err(de::Error::invalid_type(Unexpected::Map, &self)),
        }
    }
}

/// The members of a line that say whose credentials it holds: what checking its tokens needs,
/// without the cost of reading the whole entry (its timestamps above all).
#[derive(Deserialize)]
struct TokensIn<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "token_member")]
    username_encrypted: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "token_member")]
    password_encrypted: Option<Cow<'a, str>>,
}

impl TokensIn<'_> {
    /// The credential fields that are set (absent, `null` and `""` are no credential).
    fn fields(&self) -> impl Iterator<Item = &str> {
        [&self.username_encrypted, &self.password_encrypted]
            .into_iter()
            .filter_map(|f| f.as_deref().filter(|h| !h.is_empty()))
    }
}

/// Whether `line`, the indexed line of `key` (an entry when indexed), is that key's entry with
/// credentials that open with `ring` (nothing is kept of them).
pub(crate) fn credentials_open(line: &[u8], key: &str, ring: &KeyRing) -> bool {
    let open = |hex: &str| token_opens(hex, ring);
    match serde_json::from_slice::<TokensIn<'_>>(line) {
        Ok(tokens) => tokens.key == key && tokens.fields().all(open),
        // A member written twice, or not an entry after all: the full reading decides.
        Err(_) => match classify(line) {
            Classified::Entry(parsed) => parsed.key == key && parsed.tokens_open(ring),
            _ => false,
        },
    }
}

/// The credential tokens of an entry's line, as stored (hex-decoded, not decrypted); a field
/// that is not hex, or is the hex of no bytes, is left out.
pub(crate) fn stored_tokens(line: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<TokensIn<'_>>(line) {
        Ok(tokens) => tokens
            .fields()
            .filter_map(stored_hex_decode)
            .filter(|t| !t.is_empty())
            .collect(),
        Err(_) => match classify(line) {
            Classified::Entry(parsed) => parsed
                .token_fields()
                .filter_map(stored_hex_decode)
                .filter(|t| !t.is_empty())
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// The credential `field` (`username`, `password`) of the entry `key`, with the reference's
/// precedence: the token in `{field}_encrypted` when that member is true (a non-empty string:
/// the reference decrypts it and puts the plaintext in place of the `field` member), else the
/// `field` member in plaintext, else none.
pub(super) fn credential(
    key: &str,
    field: &'static str,
    hex: Option<&str>,
    plain: Option<Plain>,
    ring: &KeyRing,
) -> Result<Option<Secret>, TierError> {
    // The reference tests the field for truthiness: absent, null and "" are no credential.
    let Some(hex) = hex.filter(|h| !h.is_empty()) else {
        return match plain {
            None => Ok(None),
            Some(Plain::Text(secret)) => Ok(Some(secret)),
            Some(Plain::NotAString(what)) => Err(TierError::Corrupt {
                key: key.to_owned(),
                reason: format!("{field} is {what}, not a string"),
            }),
        };
    };
    let bytes = stored_hex_decode(hex).ok_or_else(|| TierError::Corrupt {
        key: key.to_owned(),
        reason: format!("{field}_encrypted is not hex"),
    })?;
    if bytes.is_empty() {
        // Only whitespace: the reference's encryptor reads no bytes as "".
        return Ok(Some(Secret::new(String::new())));
    }
    ring.decrypt_bytes(&bytes)
        .map(Some)
        .map_err(|source| TierError::Crypto {
            key: key.to_owned(),
            source,
        })
}
