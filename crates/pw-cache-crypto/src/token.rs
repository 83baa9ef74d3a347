//! [`Token`]: a Fernet token as stored (url-safe base64 ASCII), checked for shape.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};

use crate::error::{CryptoError, TokenProblem};

/// Version byte of every Fernet token.
const VERSION: u8 = 0x80;
/// version (1) + timestamp (8) + IV (16) + one AES block (16) + HMAC (32).
const MIN_LEN: usize = 73;

/// The bytes Python's `cryptography` (51) skips in a token: ASCII whitespace as Rust's
/// [`u8::is_ascii_whitespace`] has it (space, `\t`, `\n`, form feed, `\r`; not `\x0b`).
fn skipped_by_cryptography(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Url-safe base64 without padding, unused bits of the last character ignored: how the
/// lenient reading decodes what is left of a token once its whitespace and padding are gone.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

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
    /// caller judges the bytes again (`Token::from_stored_bytes`), to name the problem.
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

    /// The canonical text of stored bytes that [`Token::from_bytes`] refuses as base64 but
    /// Python's `cryptography` 51 (which proxywhirl 0.3.3 uses) reads as the same token:
    ///
    /// - ASCII whitespace anywhere (space, `\t`, `\n`, form feed, `\r`; not `\x0b`) is
    ///   skipped;
    /// - the `=` padding may be short or missing: after the whitespace is gone, at most as many
    ///   `=` as canonical padding, only at the end (one too many is refused);
    /// - the unused low bits of the last character need not be zero.
    ///
    /// Anything else is refused as before: the standard alphabet's `+` and `/`, `=` elsewhere
    /// than at the end, a length of 1 modulo 4, other bytes. `None` when the bytes are not such
    /// a token, or are already canonical (then the strict error stands). The text returned is
    /// the same token in canonical url-safe base64, so every other check (shape, key, HMAC)
    /// applies to it unchanged.
    pub(crate) fn canonical_text(bytes: &[u8]) -> Option<String> {
        let kept: Vec<u8> = bytes.iter().copied().filter(|&b| !skipped_by_cryptography(b)).collect();
        let core_len = kept.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        let (core, padding) = kept.split_at(core_len);
        let canonical_padding = match core.len() % 4 {
            0 => 0,
            1 => return None,
            r => 4 - r,
        };
        if padding.len() > canonical_padding {
            return None;
        }
        // `=` inside the core is not in the alphabet: refused here.
        let decoded = LENIENT.decode(core).ok()?;
        let text = URL_SAFE.encode(decoded);
        (text.as_bytes() != bytes).then_some(text)
    }

    /// Stored bytes as a token, read as Python's `cryptography` 51 (proxywhirl's) reads them:
    /// [`Token::from_bytes`], and when that finds them no canonical url-safe base64, the same
    /// token with ASCII whitespace (space, `\t`, `\n`, form feed, `\r`) dropped anywhere,
    /// short or missing `=` padding restored and unused bits of the last character cleared;
    /// the standard alphabet's `+` `/`, one `=` too many, `=` elsewhere than at the end and
    /// any other byte stay refused. The token holds its canonical text (so, read leniently, not
    /// the bytes given). Errors are those of [`Token::from_bytes`] on `bytes`, or, when the
    /// lenient reading finds base64, on the canonical text (a token too short, of another
    /// version, ...). What [`crate::KeyRing::decrypt_bytes`] decrypts.
    pub fn from_stored_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        match Self::from_bytes(bytes) {
            Err(CryptoError::MalformedToken(TokenProblem::NotBase64)) => match Self::canonical_text(bytes) {
                Some(text) => Self::parse(&text),
                None => Err(CryptoError::MalformedToken(TokenProblem::NotBase64)),
            },
            strict => strict,
        }
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
