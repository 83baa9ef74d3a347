//! `pw_cache._native`: the Python extension module of pw-cache.
//!
//! The Python package `pw_cache` (in `python/pw_cache/`) re-exports what is defined here:
//! [`cache::Cache`], [`tier::Tier`], [`entry::Entry`], [`entry::PySecret`] (`pw_cache.Secret`), [`entry_model::EntryModel`] and the crypto
//! helpers of [`crypto`], and the `pw-cache` command ([`cli`]). The exception classes are defined in Python (`pw_cache/_errors.py`,
//! so that e.g. `ConfigError` can derive from both `pw_cache.Error` and `ValueError`), and
//! raised from here through [`errors`]. The engine's `tracing` events reach Python's `logging`
//! through [`logging`]. See `docs/python.md`.
#![forbid(unsafe_code)]

use pyo3::prelude::*;

pub mod cache;
pub mod cli;
pub mod config;
pub mod convert;
pub mod crypto;
pub mod entry;
pub mod entry_model;
pub mod errors;
pub mod logging;
pub mod tier;

/// The module `pw_cache._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    m.add_class::<cache::Cache>()?;
    m.add_class::<tier::Tier>()?;
    m.add_class::<entry::Entry>()?;
    m.add_class::<entry::PySecret>()?;
    m.add_class::<entry_model::EntryModel>()?;
    m.add_function(wrap_pyfunction!(crypto::generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(crypto::encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(crypto::decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(crypto::rotate, m)?)?;
    m.add_function(wrap_pyfunction!(cache::generate_cache_key, m)?)?;
    m.add_function(wrap_pyfunction!(cli::cli, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
