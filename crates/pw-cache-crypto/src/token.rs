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
