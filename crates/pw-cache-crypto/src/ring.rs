//! [`KeyRing`]: one current key and any number of previous keys; encrypt, decrypt, rotate.

use std::fmt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use pw_cache_model::Secret;
use zeroize::Zeroize;

use crate::error::{CryptoError, KeySource};
use crate::key::FernetKey;
use crate::token::Token;

/// How far in the future a token may be stamped for [`KeyRing::decrypt_with_ttl`] (the spec's
/// and Python's 60 s).
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 60;

/// Where the ring's current key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Keys handed to [`KeyRing::new`] or [`KeyRing::from_secrets`].
    Explicit,
    /// `CacheConfig::encryption_key`.
    Config,
    /// The environment variable [`crate::ENV_CURRENT_KEY`].
    Environment,
    /// The key file, because no key was configured.
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Whether this open created it.
        created: bool,
    },
}

impl fmt::Display for KeyOrigin {
    /// Where the key came from, in words for an operator (a path or a variable's name, never
    /// key material).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Explicit => f.write_str("the keys given to the cache"),
            KeyOrigin::Config => f.write_str("the configuration's encryption_key"),
            KeyOrigin::Environment => write!(f, "the environment variable {}", crate::ENV_CURRENT_KEY),
            KeyOrigin::KeyFile { path, .. } => write!(f, "the key file {}", path.display()),
        }
    }
}

/// How the keys of a ring open a sample of stored credential tokens
/// ([`KeyRing::check_sample`]): what a cache checks before it uses a ring on what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleCheck {
    /// Tokens looked at.
    pub sampled: usize,
    /// Opened by the current key or a previous key given with it.
    pub opened: usize,
    /// Opened only by a key of the key file, which joined the ring as a previous key because a
    /// key was configured ([`KeyRing::key_file_previous`]).
    pub opened_by_key_file_only: usize,
}

impl SampleCheck {
    /// Tokens no key of the ring opens.
    pub fn unopened(&self) -> usize {
        self.sampled - self.opened - self.opened_by_key_file_only
    }
}

/// The keys of a cache: the current key encrypts, every key decrypts (the current first), as
/// Python's `MultiFernet([current, *previous])`.
///
/// Cheap to share: it is `Send + Sync`; wrap it in an `Arc` to hand it to several tiers. Every
/// key is zeroized when the ring is dropped; `Debug` shows how many keys, not which.
#[derive(Clone)]
pub struct KeyRing {
    /// `keys[0]` is the current key; no two are equal.
    keys: Vec<FernetKey>,
    origin: KeyOrigin,
    /// The key file whose keys joined the ring as previous keys behind a configured key, and
    /// the index of the first of them.
    key_file_previous: Option<(PathBuf, usize)>,
    /// Warnings [`KeyRing::resolve`] found for an operator (see [`KeyRing::warnings`]).
    warnings: Vec<String>,
}

impl KeyRing {
    /// A ring of `current` and `previous` (duplicates of an earlier key are dropped).
    pub fn new(current: FernetKey, previous: impl IntoIterator<Item = FernetKey>) -> Self {
        let mut ring = Self {
            keys: vec![current],
            origin: KeyOrigin::Explicit,
            key_file_previous: None,
            warnings: Vec::new(),
        };
        ring.add_previous(previous);
        ring
    }

    /// Parses the keys (url-safe base64); an invalid one is an error naming its position.
    pub fn from_secrets(current: &Secret, previous: &[Secret]) -> Result<Self, CryptoError> {
        let current = FernetKey::parse(current.expose_secret(), KeySource::Explicit { index: 0 })?;
        let previous = previous
            .iter()
            .enumerate()
            .map(|(i, k)| FernetKey::parse(k.expose_secret(), KeySource::Explicit { index: i + 1 }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(current, previous))
    }

    pub(crate) fn with_origin(mut self, origin: KeyOrigin) -> Self {
        self.origin = origin;
        self
    }

    pub(crate) fn add_previous(&mut self, previous: impl IntoIterator<Item = FernetKey>) {
        for key in previous {
            if !self.keys.contains(&key) {
                self.keys.push(key);
            }
        }
    }

    pub(crate) fn add_warnings(&mut self, warnings: Vec<String>) {
        self.warnings.extend(warnings);
    }

    /// What [`KeyRing::resolve`] found worth telling an operator about the key file (it is
    /// readable by group or others ...), each a sentence naming the file; empty for a ring
    /// made otherwise. Also logged with `tracing`; a command-line tool prints them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where the current key came from.
    pub fn origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// The key file whose keys are in the ring as previous keys because a key was configured
    /// while the file existed (see [`KeyRing::resolve`]); `None` when no such key is in it.
    pub fn key_file_previous(&self) -> Option<&std::path::Path> {
        self.key_file_previous
            .as_ref()
            .filter(|(_, first)| *first < self.keys.len())
            .map(|(path, _)| path.as_path())
    }

    /// Adds the keys of the key file at `path` as previous keys, remembering where they came
    /// from (see [`KeyRing::key_file_previous`]).
    pub(crate) fn add_key_file_previous(&mut self, path: PathBuf, keys: Vec<FernetKey>) {
        let first = self.keys.len();
        self.add_previous(keys);
        if self.keys.len() > first {
            self.key_file_previous = Some((path, first));
        }
    }

    /// How the keys of the ring open `tokens` (each a stored token's bytes): how many the
    /// current key or a previous key given with it opens, and how many only a key that came
    /// from the key file opens. Bytes that are no token count as sampled and unopened. The
    /// plaintexts are zeroized at once.
    pub fn check_sample(&self, tokens: &[Vec<u8>]) -> SampleCheck {
        let file_first = self
            .key_file_previous
            .as_ref()
            .map_or(self.keys.len(), |(_, first)| *first);
        let mut check = SampleCheck {
            sampled: tokens.len(),
            ..SampleCheck::default()
        };
        for bytes in tokens {
            let Ok(token) = Token::from_stored_bytes(bytes) else {
                continue;
            };
            if let Ok((index, mut plaintext)) = self.open(&token) {
                plaintext.zeroize();
                if index < file_first {
                    check.opened += 1;
                } else {
                    check.opened_by_key_file_only += 1;
                }
            }
        }
        check
    }

    /// The key that encrypts.
    pub fn current(&self) -> &FernetKey {
        &self.keys[0]
    }

    /// How many keys (current + previous).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a ring has a current key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Encrypts `plaintext` with the current key, stamped now.
    pub fn encrypt(&self, plaintext: &Secret) -> Token {
        self.encrypt_at(plaintext, unix_now())
    }

    /// Encrypts `plaintext` with the current key, stamped `unix_seconds`.
    pub fn encrypt_at(&self, plaintext: &Secret, unix_seconds: u64) -> Token {
        let text = self
            .current()
            .fernet
            .encrypt_at_time(plaintext.expose_secret().as_bytes(), unix_seconds);
        Token::from_fernet_output(text, unix_seconds)
    }

    /// Decrypts with the first key of the ring that authenticates the token.
    ///
    /// Unlike the `fernet` crate, and like Python's `cryptography` (with no TTL), a token
    /// stamped in the future is accepted: a writer's clock ahead of ours must not make its
    /// credentials unreadable.
    pub fn decrypt(&self, token: &Token) -> Result<Secret, CryptoError> {
        let (_, plaintext) = self.open(token)?;
        plaintext_to_secret(plaintext)
    }

    /// Decrypts as the Fernet specification verifies: the token must also be at most
    /// `ttl_seconds` old and at most 60 s in the future at `now_unix`. The cache itself does not
    /// use token age (entries expire by `expires_at`); this is for callers that want the
    /// spec's full check.
    pub fn decrypt_with_ttl(&self, token: &Token, ttl_seconds: u64, now_unix: u64) -> Result<Secret, CryptoError> {
        let issued = token.timestamp();
        if issued.saturating_add(ttl_seconds) < now_unix {
            return Err(CryptoError::TokenExpired { issued, ttl_seconds });
        }
        if issued > now_unix.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(CryptoError::TokenFromTheFuture { issued });
        }
        self.decrypt(token)
    }

    /// Checks the shape of stored bytes and decrypts them, reading them as Python's
    /// `cryptography` 51 (proxywhirl's) does: canonical url-safe base64 as
    /// [`Token::from_bytes`] checks it, and also, when that refuses them, the same token with
    /// ASCII whitespace anywhere, short or missing `=` padding, or unused bits set in its last
    /// character (see `Token::canonical_text` for the exact rules). What `cryptography`
    /// refuses stays refused (the standard alphabet's `+` `/`, one `=` too many, ...), with
    /// the same typed errors ([`CryptoError::is_corrupt_token`]).
    ///
    /// The same result as `self.decrypt(&token)` for the token so read, faster: sound bytes
    /// are decrypted without being decoded twice and copied into a [`Token`] first (measured in
    /// [`pw_cache::docs::performance`]), and only bytes that fail are judged the slow way
    /// (the strict check, then the lenient reading), so that the error names what is wrong
    /// with them.
    ///
    /// [`pw_cache::docs::performance`]: https://docs.rs/pw-cache/latest/pw_cache/docs/performance/index.html
    pub fn decrypt_bytes(&self, bytes: &[u8]) -> Result<Secret, CryptoError> {
        if let Some((text, timestamp)) = Token::peek(bytes)
            && let Ok((_, plaintext)) = self.open_text(text, timestamp)
        {
            return plaintext_to_secret(plaintext);
        }
        self.decrypt(&Token::from_stored_bytes(bytes)?)
    }

    /// Which key of the ring opens the token: `Some(0)` for the current key, `Some(i)` for
    /// the i-th previous key, `None` for none.
    pub fn key_index(&self, token: &Token) -> Option<usize> {
        self.open(token).ok().map(|(i, mut plaintext)| {
            plaintext.zeroize();
            i
        })
    }

    /// Re-encrypts stored token bytes under the current key, as [`KeyRing::rotate`] (the
    /// original timestamp kept, as Python's `MultiFernet.rotate`), the bytes read as
    /// [`KeyRing::decrypt_bytes`] reads them ([`Token::from_stored_bytes`]: a token with
    /// whitespace or short padding is rotated too). The result's bytes, canonical.
    pub fn rotate_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.rotate(&Token::from_stored_bytes(bytes)?).map(Token::into_bytes)
    }

    /// Re-encrypts a token readable by any key of the ring under the current key, keeping its
    /// original timestamp (Python's `MultiFernet.rotate`).
    pub fn rotate(&self, token: &Token) -> Result<Token, CryptoError> {
        let (_, mut plaintext) = self.open(token)?;
        let text = self.current().fernet.encrypt_at_time(&plaintext, token.timestamp());
        plaintext.zeroize();
        Ok(Token::from_fernet_output(text, token.timestamp()))
    }

    fn open(&self, token: &Token) -> Result<(usize, Vec<u8>), CryptoError> {
        self.open_text(token.as_str(), token.timestamp())
    }

    /// [`KeyRing::open`] of a token's text and timestamp.
    fn open_text(&self, text: &str, timestamp: u64) -> Result<(usize, Vec<u8>), CryptoError> {
        // "Now" = the token's own stamp: no TTL and no clock-skew check, as Python without ttl.
        for (i, key) in self.keys.iter().enumerate() {
            if let Ok(plaintext) = key.fernet.decrypt_at_time(text, None, timestamp) {
                return Ok((i, plaintext));
            }
        }
        Err(CryptoError::TokenRejected)
    }
}

fn plaintext_to_secret(plaintext: Vec<u8>) -> Result<Secret, CryptoError> {
    match String::from_utf8(plaintext) {
        Ok(text) => Ok(Secret::new(text)),
        Err(err) => {
            err.into_bytes().zeroize();
            Err(CryptoError::NotUtf8)
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.len())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TokenProblem;

    fn ring() -> (KeyRing, FernetKey, FernetKey) {
        let (current, previous) = (FernetKey::generate(), FernetKey::generate());
        (KeyRing::new(current.clone(), [previous.clone()]), current, previous)
    }

    #[test]
    fn round_trip_and_key_index() {
        let (ring, _, previous) = ring();
        let token = ring.encrypt(&Secret::new("p@ss"));
        assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), "p@ss");
        assert_eq!(ring.key_index(&token), Some(0));
        let old = KeyRing::new(previous, []).encrypt(&Secret::new("old"));
        assert_eq!(ring.key_index(&old), Some(1));
        assert_eq!(ring.decrypt(&old).unwrap().expose_secret(), "old");
    }

    #[test]
    fn rotate_moves_to_the_current_key_and_keeps_the_timestamp() {
        let (ring, current, previous) = ring();
        let old = KeyRing::new(previous, []).encrypt_at(&Secret::new("s"), 1_000_000_000);
        let rotated = ring.rotate(&old).unwrap();
        assert_eq!(rotated.timestamp(), 1_000_000_000);
        let only_new = KeyRing::new(current, []);
        assert_eq!(only_new.decrypt(&rotated).unwrap().expose_secret(), "s");
        assert!(matches!(only_new.decrypt(&old), Err(CryptoError::TokenRejected)));
    }

    #[test]
    fn unknown_key_and_tampering_are_rejected() {
        let (ring, _, _) = ring();
        let stranger = KeyRing::new(FernetKey::generate(), []).encrypt(&Secret::new("x"));
        assert!(matches!(ring.decrypt(&stranger), Err(CryptoError::TokenRejected)));
        let mut bytes = ring.encrypt(&Secret::new("x")).into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let err = ring.decrypt_bytes(&bytes).unwrap_err();
        assert!(err.is_corrupt_token(), "{err}");
    }

    /// What `decrypt_bytes` is defined to be: the slow way, every step checked.
    fn decrypt_bytes_slowly(ring: &KeyRing, bytes: &[u8]) -> Result<Secret, CryptoError> {
        ring.decrypt(&Token::from_stored_bytes(bytes)?)
    }

    fn same_outcome(ring: &KeyRing, bytes: &[u8]) {
        let fast = ring.decrypt_bytes(bytes).map(|s| s.expose_secret().to_owned());
        let slow = decrypt_bytes_slowly(ring, bytes).map(|s| s.expose_secret().to_owned());
        assert_eq!(
            format!("{fast:?}"),
            format!("{slow:?}"),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    #[test]
    fn decrypt_bytes_agrees_with_the_checked_way_on_damaged_tokens() {
        let (ring, _, previous) = ring();
        let mut tokens = vec![KeyRing::new(previous, []).encrypt(&Secret::new("old")).into_bytes()];
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 47, 48] {
            tokens.push(ring.encrypt(&Secret::new("p".repeat(len))).into_bytes());
        }
        let alphabet = b"AZaz09-_+/=.%\0\xff";
        for token in &tokens {
            same_outcome(&ring, token);
            for at in 0..token.len() {
                for &b in alphabet {
                    let mut damaged = token.clone();
                    damaged[at] = b;
                    same_outcome(&ring, &damaged);
                }
                let mut removed = token.clone();
                removed.remove(at);
                same_outcome(&ring, &removed);
                same_outcome(&ring, &token[..at]);
            }
            for tail in [&b"="[..], b"==", b"===", b"A", b"AAAA", b"AA==", b"===="] {
                let mut longer = token.clone();
                longer.extend_from_slice(tail);
                same_outcome(&ring, &longer);
                let trimmed: Vec<u8> = token.iter().copied().filter(|&b| b != b'=').collect();
                let mut repadded = trimmed.clone();
                repadded.extend_from_slice(tail);
                same_outcome(&ring, &trimmed);
                same_outcome(&ring, &repadded);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn decrypt_bytes_agrees_with_the_checked_way_on_any_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            base64 in "[A-Za-z0-9_=-]{96,140}",
        ) {
            let (ring, _, _) = ring();
            same_outcome(&ring, &bytes);
            same_outcome(&ring, base64.as_bytes());
            let mut prefixed = b"gAAAAA".to_vec();
            prefixed.extend_from_slice(base64.as_bytes());
            same_outcome(&ring, &prefixed);
        }
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Variants of tokens (whitespace, padding, unused bits, alphabet) with what Python's
    /// `cryptography` 51 made of each (`testdata/make_lenient_tokens.py`).
    const LENIENT_CASES: &str = include_str!("../testdata/lenient_tokens.txt");

    #[test]
    fn decrypt_bytes_reads_what_cryptography_51_reads() {
        let mut lines = LENIENT_CASES.lines().filter(|l| !l.starts_with('#'));
        let key = lines.next().unwrap().strip_prefix("key ").unwrap();
        let ring = KeyRing::new(FernetKey::parse(key, KeySource::Config).unwrap(), []);
        let (mut accepted, mut refused) = (0, 0);
        for line in lines {
            let mut parts = line.splitn(4, ' ');
            let (verdict, variant, plaintext, what) = (
                parts.next().unwrap(),
                unhex(parts.next().unwrap()),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let got = ring.decrypt_bytes(&variant);
            match verdict {
                "ok" => {
                    let want = if plaintext == "-" { Vec::new() } else { unhex(plaintext) };
                    let got = got.unwrap_or_else(|e| panic!("{what}: cryptography reads it, we fail: {e}"));
                    assert_eq!(got.expose_secret().as_bytes(), want, "{what}");
                    // The sample check reads stored tokens the same way.
                    assert_eq!(ring.check_sample(std::slice::from_ref(&variant)).opened, 1, "{what}");
                    accepted += 1;
                }
                "refused" => {
                    let err = got
                        .err()
                        .unwrap_or_else(|| panic!("{what}: cryptography refuses it, we read it"));
                    assert!(err.is_corrupt_token(), "{what}: {err}");
                    assert_eq!(ring.check_sample(&[variant]).opened, 0, "{what}");
                    refused += 1;
                }
                other => panic!("verdict {other:?}"),
            }
        }
        assert!(accepted > 50 && refused > 50, "{accepted} accepted, {refused} refused");
    }

    #[test]
    fn rotate_bytes_rotates_what_decrypt_bytes_reads_keeping_the_timestamp() {
        let (ring, _, previous) = ring();
        let old = KeyRing::new(previous, []).encrypt_at(&Secret::new("s"), 1_000_000_000);
        let unpadded = old.as_str().trim_end_matches('=');
        for stored in [
            old.as_str().to_owned(),
            format!("{}\n", old.as_str()),
            format!(" {unpadded}"),
        ] {
            let rotated = Token::from_bytes(&ring.rotate_bytes(stored.as_bytes()).unwrap()).unwrap();
            assert_eq!(rotated.timestamp(), 1_000_000_000, "{stored:?}");
            assert_eq!(ring.key_index(&rotated), Some(0));
            assert_eq!(ring.decrypt(&rotated).unwrap().expose_secret(), "s");
        }
        let err = ring.rotate_bytes(b"gAAA+/==").unwrap_err();
        assert!(err.is_corrupt_token(), "{err}");
    }

    #[test]
    fn lenient_reading_keeps_the_strict_parse_and_typed_errors() {
        let (ring, _, _) = ring();
        let token = ring.encrypt(&Secret::new("pw"));
        // Canonical bytes take the strict path; the lenient reading has nothing to change.
        assert!(Token::canonical_text(token.as_bytes()).is_none());
        let mut spaced = token.as_bytes().to_vec();
        spaced.insert(30, b' ');
        spaced.push(b'\n');
        // `Token::from_bytes` stays strict: only reading stored bytes is lenient.
        assert!(matches!(
            Token::from_bytes(&spaced),
            Err(CryptoError::MalformedToken(TokenProblem::NotBase64))
        ));
        assert_eq!(Token::canonical_text(&spaced).as_deref(), Some(token.as_str()));
        assert_eq!(ring.decrypt_bytes(&spaced).unwrap().expose_secret(), "pw");
        // Whitespace around a token too short is still a token too short.
        assert!(matches!(
            ring.decrypt_bytes(b" gAAA \n"),
            Err(CryptoError::MalformedToken(TokenProblem::TooShort { len: 3 }))
        ));
        // What cryptography refuses is refused as before: the strict error.
        let extra = [token.as_bytes(), b"="].concat();
        for bad in [&b" \x0b "[..], b"gAAA%AAA", &extra] {
            assert!(
                matches!(
                    ring.decrypt_bytes(bad),
                    Err(CryptoError::MalformedToken(TokenProblem::NotBase64))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A lenient token of another key: rejected, as a corrupt token.
        let stranger = KeyRing::new(FernetKey::generate(), []);
        let err = stranger.decrypt_bytes(&spaced).unwrap_err();
        assert!(matches!(err, CryptoError::TokenRejected), "{err}");
    }

    #[test]
    fn future_tokens_are_accepted() {
        let (ring, _, _) = ring();
        let token = ring.encrypt_at(&Secret::new("later"), unix_now() + 3600);
        assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), "later");
    }

    #[test]
    fn ttl_verification_checks_age_and_skew() {
        let (ring, _, _) = ring();
        let token = ring.encrypt_at(&Secret::new("t"), 1000);
        assert!(ring.decrypt_with_ttl(&token, 60, 1060).is_ok());
        assert!(matches!(
            ring.decrypt_with_ttl(&token, 60, 1061),
            Err(CryptoError::TokenExpired { issued: 1000, .. })
        ));
        assert!(ring.decrypt_with_ttl(&token, 60, 940).is_ok());
        assert!(matches!(
            ring.decrypt_with_ttl(&token, 60, 939),
            Err(CryptoError::TokenFromTheFuture { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_utf8_round_trips(text in "\\PC{0,64}|[\\x00-\\x7f]{0,16}|.{4990,5000}") {
            let (ring, _, _) = ring();
            let token = ring.encrypt(&Secret::new(text.clone()));
            let back = ring.decrypt(&token).unwrap();
            proptest::prop_assert_eq!(back.expose_secret(), text.as_str());
        }
    }

    #[test]
    fn edge_plaintexts_round_trip() {
        let (ring, _, _) = ring();
        for text in [
            String::new(),
            "\0".to_owned(),
            "\0a\0".to_owned(),
            "é😀".repeat(1250),
            "x".repeat(5000),
        ] {
            let token = ring.encrypt(&Secret::new(text.clone()));
            assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), text);
        }
    }

    #[test]
    fn duplicates_are_dropped_and_debug_hides_keys() {
        let k = FernetKey::generate();
        let ring = KeyRing::new(k.clone(), [k.clone(), k]);
        assert_eq!(ring.len(), 1);
        assert!(!format!("{ring:?}").contains(ring.current().to_base64().expose_secret()));
    }
}
