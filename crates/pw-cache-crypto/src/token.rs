//! [`Token`]: a Fernet token as stored (url-safe base64 ASCII), checked for shape.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use crate::error::{CryptoError, TokenProblem};

/// Version byte of every Fernet token.
const VERSION: u8 = 0x80;
/// version (1) + timestamp (8) + IV (16) + one AES block (16) + HMAC (32).
const MIN_LEN: usize = 73;

/// A Fernet token: the url-safe base64 text that is stored (as hex of its bytes in JSONL, as
/// a BLOB of its bytes in SQLite). Made by [`crate::KeyRing::encrypt`] or checked by
/// [`Token::from_bytes`]; holds no plaintext, and `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    text: String,
    timestamp: u64,
}

impl Token {
    /// Checks that `bytes` are shaped like a Fernet token (ASCII url-safe base64 with canonical
    /// padding, version 0x80, long enough, block aligned). Says nothing of which key made it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let malformed = CryptoError::MalformedToken;
        if bytes.is_empty() {
            return Err(malformed(TokenProblem::Empty));
        }
        let decoded = URL_SAFE.decode(bytes).map_err(|_| malformed(TokenProblem::NotBase64))?;
        if decoded.len() < MIN_LEN {
            return Err(malformed(TokenProblem::TooShort { len: decoded.len() }));
        }
        if decoded[0] != VERSION {
            return Err(malformed(TokenProblem::BadVersion { version: decoded[0] }));
        }
        if (decoded.len() - 1 - 8 - 16 - 32) % 16 != 0 {
            return Err(malformed(TokenProblem::NotBlockAligned));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&decoded[1..9]);
        // Base64 decoded, so the input is ASCII.
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| malformed(TokenProblem::NotBase64))?;
        Ok(Self {
            text,
            timestamp: u64::from_be_bytes(ts),
        })
    }

    /// The text and timestamp of `bytes` when they are shaped like a token as far as can be
    /// told without decoding them: ASCII, a length that is a multiple of 4 with at most two
    /// `=` of padding, a decoded length that is at least [`MIN_LEN`] and block aligned, and
    /// (from the first 12 characters, decoded) version 0x80. What is left unchecked, the
    /// alphabet and padding bits of the rest, the Fernet decryption that follows checks as
    /// [`Token::from_bytes`] does (the `fernet` crate decodes what is left after trimming the
    /// `=`, strictly): a token it accepts passes [`Token::from_bytes`] too. On any failure a
    /// caller judges the bytes again with [`Token::from_bytes`], to name the problem.
    pub(crate) fn peek(bytes: &[u8]) -> Option<(&str, u64)> {
        const PREFIX: usize = 12; // 4 * 3 characters: the 9 bytes of version and timestamp
        let text = std::str::from_utf8(bytes).ok()?;
        if !text.is_ascii() || text.len() % 4 != 0 || text.len() < PREFIX {
            return None;
        }
        let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
        if padding > 2 {
            return None;
        }
        let decoded_len = text.len() / 4 * 3 - padding;
        if decoded_len < MIN_LEN || (decoded_len - 1 - 8 - 16 - 32) % 16 != 0 {
            return None;
        }
        let mut head = [0_u8; 9];
        match URL_SAFE.decode_slice(&bytes[..PREFIX], &mut head) {
            Ok(9) if head[0] == VERSION => {}
            _ => return None,
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[1..9]);
        Some((text, u64::from_be_bytes(ts)))
    }

    /// As [`Token::from_bytes`].
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(text.as_bytes())
    }

    pub(crate) fn from_fernet_output(text: String, timestamp: u64) -> Self {
        Self { text, timestamp }
    }

    /// When the token was made, in Unix seconds (bytes 1..9 of the decoded token).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The token text (url-safe base64).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The token's bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The token's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.text.into_bytes()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes, t={})", self.text.len(), self.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str =
        "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

    #[test]
    fn reads_the_timestamp() {
        // The spec's token was made at 1985-10-26T01:20:00-07:00 = 499162800.
        assert_eq!(Token::parse(SPEC).unwrap().timestamp(), 499_162_800);
    }

    #[test]
    fn rejects_malformed_shapes() {
        let problem = |t: &str| match Token::parse(t) {
            Err(CryptoError::MalformedToken(p)) => p,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(problem(""), TokenProblem::Empty);
        assert_eq!(problem("%%%%"), TokenProblem::NotBase64);
        assert_eq!(problem(&SPEC[..SPEC.len() - 2]), TokenProblem::NotBase64);
        assert_eq!(problem("gAAA"), TokenProblem::TooShort { len: 3 });
        assert!(matches!(
            problem(&format!("A{}", &SPEC[1..])),
            TokenProblem::BadVersion { .. }
        ));
        assert!(Token::from_bytes(&[0xff, 0xfe]).is_err());
    }
}
