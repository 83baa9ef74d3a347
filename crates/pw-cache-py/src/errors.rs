//! Raising the exceptions of `pw_cache/_errors.py` from Rust errors.
//!
//! Every message is the Rust error's `Display`, which never holds a credential, a key or a
//! token (a property of every error type of the workspace).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use pw_cache::{ConfigError, CryptoError, ManagerError, TierError};

/// The exception classes of `pw_cache._errors`, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `pw_cache.Error`: the base class.
    Error,
    /// `pw_cache.ConfigError` (also a `ValueError`).
    Config,
    /// `pw_cache.EncryptionKeyError`: no usable key ring.
    EncryptionKey,
    /// `pw_cache.WrongKeyError`: the key does not open this cache's credentials.
    WrongKey,
    /// `pw_cache.InvalidEntryError` (also a `ValueError`).
    InvalidEntry,
    /// `pw_cache.ClosedError`.
    Closed,
    /// `pw_cache.TierError`: a tier could not be opened, read or written.
    Tier,
    /// `pw_cache.NotStoredError`: no tier stored an entry (a `TierError`).
    NotStored,
    /// `pw_cache.WarmError`: a warm file that cannot be used at all.
    Warm,
    /// `pw_cache.ExportError`: an export that could not be written.
    Export,
    /// `pw_cache.DecryptionError`: a token no key opens, or not a token.
    Decryption,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Error => "Error",
            Kind::Config => "ConfigError",
            Kind::EncryptionKey => "EncryptionKeyError",
            Kind::WrongKey => "WrongKeyError",
            Kind::InvalidEntry => "InvalidEntryError",
            Kind::Closed => "ClosedError",
            Kind::Tier => "TierError",
            Kind::NotStored => "NotStoredError",
            Kind::Warm => "WarmError",
            Kind::Export => "ExportError",
            Kind::Decryption => "DecryptionError",
        }
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, kind: Kind) -> PyResult<Bound<'py, PyType>> {
    let module = ERRORS_MODULE.get_or_try_init(py, || py.import("pw_cache._errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(kind.class_name())?.cast_into::<PyType>()?)
}

/// A `PyErr` of class `kind` with `message`. If the class cannot be found (the package is
/// broken), a `RuntimeError` with the same message.
pub fn error(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| match class(py, kind) {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(_) => PyRuntimeError::new_err(message),
    })
}

/// The class a [`ManagerError`] is raised as.
pub fn manager_kind(e: &ManagerError) -> Kind {
    match e {
        ManagerError::Keys(_) => Kind::EncryptionKey,
        ManagerError::WrongKey { .. } | ManagerError::KeyFileKeyOnly { .. } => Kind::WrongKey,
        ManagerError::RedisFeatureMissing | ManagerError::SharedKeyRequired { .. } => Kind::Config,
        ManagerError::OpenTier { .. } | ManagerError::ListKeys { .. } | ManagerError::Incomplete { .. } => Kind::Tier,
        ManagerError::InvalidEntry { .. } | ManagerError::KeyMismatch { .. } | ManagerError::InvalidTtl { .. } => {
            Kind::InvalidEntry
        }
        ManagerError::NotStored { .. } => Kind::NotStored,
        ManagerError::Closed => Kind::Closed,
        ManagerError::ExportTier { .. } | ManagerError::Export { .. } => Kind::Export,
        ManagerError::Warm(_) => Kind::Warm,
        // `ManagerError` may grow variants: they are `pw_cache.Error`s.
        #[allow(unreachable_patterns)]
        _ => Kind::Error,
    }
}

/// A [`ManagerError`] as a Python exception (its message the error's `Display`).
pub fn manager(e: ManagerError) -> PyErr {
    error(manager_kind(&e), e.to_string())
}

/// A [`ConfigError`] as `pw_cache.ConfigError`.
pub fn config(e: ConfigError) -> PyErr {
    error(Kind::Config, e.to_string())
}

/// A [`CryptoError`] as `pw_cache.DecryptionError` (a token) or `pw_cache.EncryptionKeyError`
/// (a key).
pub fn crypto(e: CryptoError) -> PyErr {
    let kind = if e.is_corrupt_token() {
        Kind::Decryption
    } else {
        Kind::EncryptionKey
    };
    error(kind, e.to_string())
}

/// A [`TierError`] of a direct tier operation (`pw_cache.Tier`): `InvalidEntryError` for an
/// entry the tier refuses, `ClosedError` for a closed tier, `TierError` otherwise.
pub fn tier(e: TierError) -> PyErr {
    let kind = match e {
        TierError::InvalidEntry { .. } => Kind::InvalidEntry,
        TierError::Closed { .. } => Kind::Closed,
        _ => Kind::Tier,
    };
    error(kind, e.to_string())
}
