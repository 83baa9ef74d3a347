//! `Cache(**options)`: keyword options as a [`CacheConfig`].
//!
//! The options are the fields of proxywhirl's `CacheConfig` (the JSON form
//! [`CacheConfig::from_json_str`] reads, so every bound and the error naming the field are the
//! engine's), plus flat spellings of the tier settings (`l1_max_entries`,
//! `l2_eviction_policy`, `l3_enabled` ...), and two that are not part of the config: `key_file`
//! and `l1_shards` (see [`pw_cache::CacheManagerBuilder::l1_shards`]).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

use pw_cache::CacheConfig;

use crate::convert::py_to_json;
use crate::entry::PySecret;
use crate::errors::{self, Kind};

/// The tier settings that have a flat spelling (`l1_max_entries` is `l1_config.max_entries`).
const TIER_FIELDS: [&str; 3] = ["max_entries", "eviction_policy", "enabled"];

/// What `Cache(**options)` was given, checked.
#[derive(Debug)]
pub struct Options {
    /// The cache's configuration.
    pub config: CacheConfig,
    /// The key file to use instead of the default one, if given.
    pub key_file: Option<String>,
    /// L1's shard count (0: the default; 1: `l1_max_entries` exact, as proxywhirl's L1).
    pub l1_shards: usize,
}

/// Reads the options; an unknown option or a bad value is `pw_cache.ConfigError` naming it.
pub fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let mut doc = Map::new();
    let mut flat: Vec<(String, &'static str, Value)> = Vec::new();
    let mut key_file = None;
    let mut l1_shards = 0;
    if let Some(kwargs) = kwargs {
        for (name, value) in kwargs.iter() {
            let name: String = name.extract()?;
            if name == "key_file" {
                key_file = (!value.is_none())
                    .then(|| py_to_json(&value, "key_file"))
                    .transpose()
                    .map_err(|e| config_error(value.py(), e))?
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(errors::error(Kind::Config, "option `key_file` must be a path")),
                    })
                    .transpose()?;
                continue;
            }
            if name == "l1_shards" {
                l1_shards = value
                    .extract::<usize>()
                    .map_err(|_| errors::error(Kind::Config, "option `l1_shards` must be an int >= 0"))?;
                continue;
            }
            let json = if name == "encryption_key" || name == "redis_url" {
                secret_option(&value, &name)?
            } else {
                py_to_json(&value, &format!("option `{name}`")).map_err(|e| config_error(value.py(), e))?
            };
            if let Some((tier, field)) = flat_tier_field(&name) {
                flat.push((format!("{tier}_config"), field, json));
            } else {
                doc.insert(name, json);
            }
        }
    }
    for (tier, field, value) in flat {
        let slot = doc.entry(tier.clone()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(tier_doc) = slot else {
            return Err(errors::error(
                Kind::Config,
                format!("option `{tier}` must be a dict when a flat tier option is also given"),
            ));
        };
        tier_doc.insert(field.to_owned(), value);
    }
    let config = CacheConfig::from_json_str(&Value::Object(doc).to_string()).map_err(errors::config)?;
    Ok(Options {
        config,
        key_file,
        l1_shards,
    })
}

/// Reads proxywhirl's `CacheConfig.model_dump_json()` (or any JSON config document).
pub fn from_json(json: &str) -> PyResult<CacheConfig> {
    // serde would read a struct from an array too (`[]` as every default): refuse it.
    if !json.trim_start().starts_with('{') {
        return Err(errors::error(
            Kind::Config,
            "invalid config at `.`: a config document is a JSON object",
        ));
    }
    CacheConfig::from_json_str(json).map_err(errors::config)
}

/// `l2_max_entries` → `("l2", "max_entries")`.
fn flat_tier_field(name: &str) -> Option<(&'static str, &'static str)> {
    let (tier, field) = name.split_once('_')?;
    let tier = ["l1", "l2", "l3"].into_iter().find(|t| *t == tier)?;
    let field = TIER_FIELDS.into_iter().find(|f| *f == field)?;
    Some((tier, field))
}

/// A secret option (`encryption_key`, `redis_url`): `None`, a `str`, a `pw_cache.Secret` or
/// anything with `get_secret_value()` (pydantic's `SecretStr`). The error never shows it.
fn secret_option(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(secret) = value.cast::<PySecret>() {
        return Ok(Value::String(secret.get().expose().to_owned()));
    }
    let text = if value.hasattr("get_secret_value")? {
        value.call_method0("get_secret_value")?
    } else {
        value.clone()
    };
    text.extract::<String>()
        .map(Value::String)
        .map_err(|_| errors::error(Kind::Config, format!("option `{name}` must be a str or a Secret")))
}

/// An error converting an option's value, as `pw_cache.ConfigError` with the same message.
fn config_error(py: Python<'_>, e: PyErr) -> PyErr {
    errors::error(Kind::Config, e.value(py).to_string())
}
