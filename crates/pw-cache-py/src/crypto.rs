//! The Fernet helpers of `pw_cache._native`, over the workspace's `pw_cache_crypto`
//! ([`KeyRing`], [`FernetKey`]): what the drop-in `pw_cache.compat` needs to read and write
//! proxywhirl's encrypted credentials.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use pw_cache::{FernetKey, KeyRing, Secret};

use crate::errors::{self, Kind};

/// A ring of `keys` (the first is current); an empty list or a malformed key is
/// `EncryptionKeyError` naming the key's position, never its text.
fn ring(keys: Vec<String>) -> PyResult<KeyRing> {
    let mut keys = keys.into_iter().map(Secret::new);
    let Some(current) = keys.next() else {
        return Err(errors::error(
            Kind::EncryptionKey,
            "no key given: the list of keys is empty",
        ));
    };
    let previous: Vec<Secret> = keys.collect();
    KeyRing::from_secrets(&current, &previous).map_err(errors::crypto)
}

/// A new random Fernet key, as url-safe base64 (44 characters), like
/// `cryptography.fernet.Fernet.generate_key().decode()`.
#[pyfunction]
pub fn generate_key() -> String {
    FernetKey::generate().to_base64().expose_secret().to_owned()
}

/// Encrypts `plaintext` under `keys[0]`: the Fernet token's ASCII bytes (what
/// `MultiFernet(keys).encrypt(plaintext.encode())` returns).
#[pyfunction]
pub fn encrypt<'py>(py: Python<'py>, keys: Vec<String>, plaintext: String) -> PyResult<Bound<'py, PyBytes>> {
    let ring = ring(keys)?;
    let token = ring.encrypt(&Secret::new(plaintext));
    Ok(PyBytes::new(py, token.as_str().as_bytes()))
}

/// Decrypts a token with the first of `keys` that opens it (as `MultiFernet.decrypt`, without a
/// TTL); the plaintext must be UTF-8. Raises `pw_cache.DecryptionError` when no key opens it or
/// it is not a token.
#[pyfunction]
pub fn decrypt(keys: Vec<String>, token: &[u8]) -> PyResult<String> {
    let ring = ring(keys)?;
    let secret = ring.decrypt_bytes(token).map_err(errors::crypto)?;
    Ok(secret.expose_secret().to_owned())
}

/// Re-encrypts a token that any of `keys` opens under `keys[0]`, keeping its timestamp (as
/// `MultiFernet.rotate`). Raises `pw_cache.DecryptionError` when no key opens it.
#[pyfunction]
pub fn rotate<'py>(py: Python<'py>, keys: Vec<String>, token: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let ring = ring(keys)?;
    let rotated = ring.rotate_bytes(token).map_err(errors::crypto)?;
    Ok(PyBytes::new(py, &rotated))
}
