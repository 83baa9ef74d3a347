//! `pw_cache.Cache`: the three-level cache ([`CacheManager`]) for Python.
//!
//! Every call that may touch the disk or Redis runs with the GIL released
//! ([`Python::detach`]), so Python threads sharing one `Cache` run it in parallel; the
//! manager is `Send + Sync` and does its own locking.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};

use pw_cache::{
    CacheManager, ExportCredentials, ExportOptions, HealthInvalidation, ManagerError, RowLocation, WarmReport,
};

use crate::config;
use crate::entry::{Entry, credential};
use crate::entry_model::EntryModel;
use crate::errors::{self, Kind};
use crate::tier::Tier;

/// `pw_cache.Cache(**options)`: a three-level proxy cache (L1 memory, L2 JSONL or SQLite, L3
/// SQLite or Redis) reading and writing proxywhirl 0.3.3's files. Thread-safe; a context
/// manager (`with Cache(...) as cache:` closes it).
#[pyclass(frozen, name = "Cache", module = "pw_cache._native")]
pub struct Cache {
    manager: Arc<CacheManager>,
    closed: AtomicBool,
}

fn open(py: Python<'_>, config: pw_cache::CacheConfig, key_file: Option<PathBuf>, l1_shards: usize) -> PyResult<Cache> {
    let manager = py
        .detach(move || {
            let mut builder = CacheManager::builder(config).l1_shards(l1_shards);
            if let Some(path) = key_file {
                builder = builder.key_file(path);
            }
            builder.open()
        })
        .map_err(errors::manager)?;
    Ok(Cache {
        manager: Arc::new(manager),
        closed: AtomicBool::new(false),
    })
}

impl Cache {
    /// The manager, unless this cache was closed (`pw_cache.ClosedError`).
    pub(crate) fn live(&self) -> PyResult<&CacheManager> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::manager(ManagerError::Closed));
        }
        Ok(&self.manager)
    }
}

impl Drop for Cache {
    /// Closes the manager with the GIL released: its background threads may be waiting for the
    /// GIL to log, and closing joins them.
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let manager = &self.manager;
        let detached = Python::try_attach(|py| {
            py.detach(|| {
                let _ = manager.close();
            })
        });
        if detached.is_none() {
            let _ = manager.close();
        }
    }
}

fn warm_report<'py>(py: Python<'py>, report: &WarmReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("loaded", report.loaded)?;
    dict.set_item("skipped", report.skipped)?;
    dict.set_item("failed", report.failed)?;
    dict.set_item("replaced", report.replaced)?;
    dict.set_item("issues_omitted", report.issues_omitted)?;
    let issues = PyList::empty(py);
    for issue in &report.issues {
        let item = PyDict::new(py);
        let (kind, number, line) = match issue.location {
            RowLocation::Line(n) => ("line", n, n),
            RowLocation::Item(n) => ("item", n, 0),
            RowLocation::Row { record, line } => ("row", record, line),
        };
        item.set_item("location", issue.location.to_string())?;
        item.set_item("unit", kind)?;
        item.set_item("number", number)?;
        if line > 0 {
            item.set_item("line", line)?;
        }
        item.set_item("kind", issue.kind.to_string())?;
        item.set_item("reason", &issue.reason)?;
        issues.append(item)?;
    }
    dict.set_item("issues", issues)?;
    Ok(dict)
}

#[pymethods]
impl Cache {
    /// `Cache(**options)`: opens a cache. The options are proxywhirl's `CacheConfig` fields
    /// (`l2_cache_dir`, `l2_backend`, `l3_database_path`, `default_ttl_seconds`,
    /// `per_source_ttl`, `encryption_key`, `l3_backend`, `redis_url` ...), tier settings flat
    /// (`l1_max_entries`, `l2_eviction_policy`, `l3_enabled` ...) or nested (`l1_config={...}`),
    /// `key_file`, and `l1_shards` (default 0: L1 split into shards, each evicting on its own;
    /// 1: `l1_max_entries` exact, as proxywhirl's L1). Raises `ConfigError` naming a bad
    /// option.
    #[new]
    #[pyo3(signature = (**options))]
    fn py_new(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let options = config::options(options)?;
        open(
            py,
            options.config,
            options.key_file.map(PathBuf::from),
            options.l1_shards,
        )
    }

    /// Opens a cache from a JSON config document: proxywhirl's `CacheConfig.model_dump_json()`
    /// (with the real `encryption_key`, not a masked one), or the same fields. `key_file` and
    /// `l1_shards` as for `Cache(...)`.
    #[classmethod]
    #[pyo3(signature = (json, *, key_file = None, l1_shards = 0))]
    fn from_config_json(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        json: &str,
        key_file: Option<PathBuf>,
        l1_shards: usize,
    ) -> PyResult<Self> {
        let config = config::from_json(json)?;
        open(py, config, key_file, l1_shards)
    }

    /// The entry under `key`, or `None` (absent or expired). A hit counts as an access. With
    /// `into=EntryModel(...)`, the entry comes as an instance of that model.
    #[pyo3(signature = (key, *, into = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        into: Option<&Bound<'py, EntryModel>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let manager = self.live()?;
        let found = py.detach(|| manager.get(key));
        found
            .map(|entry| crate::entry_model::to_python(py, entry, into))
            .transpose()
    }

    /// Stores `entry` in every tier. Returns `True`; raises `InvalidEntryError` for an entry
    /// that cannot be stored and `NotStoredError` when no tier stored it.
    fn put(&self, py: Python<'_>, entry: &Bound<'_, Entry>) -> PyResult<bool> {
        let manager = self.live()?;
        let entry = entry.get().entry();
        let stored = py.detach(|| manager.put(entry)).map_err(errors::manager)?;
        Ok(stored.l1 || stored.l2 || stored.l3)
    }

    /// A new entry for `proxy_url` from `source`: key generated from the URL (unless `key` is
    /// given), TTL from the config (`per_source_ttl`, else `default_ttl_seconds`) unless
    /// `ttl_seconds` is given. Not stored: pass it to `put`.
    #[pyo3(signature = (proxy_url, source = "user", *, username = None, password = None, ttl_seconds = None, key = None))]
    fn new_entry(
        &self,
        proxy_url: &str,
        source: &str,
        username: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
        ttl_seconds: Option<u64>,
        key: Option<String>,
    ) -> PyResult<Entry> {
        let manager = self.live()?;
        let mut entry = manager
            .new_entry(proxy_url, source)
            .map_err(errors::manager)?
            .with_credentials(credential(username, "username")?, credential(password, "password")?);
        if let Some(ttl) = ttl_seconds {
            entry
                .set_ttl(ttl)
                .map_err(|e| errors::error(Kind::InvalidEntry, e.to_string()))?;
        }
        if let Some(key) = key {
            entry = entry.with_key(key);
        }
        Ok(Entry::new(entry))
    }

    /// Removes `key` from every tier; whether any tier held it.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let manager = self.live()?;
        Ok(py.detach(|| manager.delete(key)))
    }

    /// Removes every entry from every tier; how many were removed.
    fn clear(&self, py: Python<'_>) -> PyResult<usize> {
        let manager = self.live()?;
        Ok(py.detach(|| manager.clear()))
    }

    /// Reports a health failure of `key`'s proxy: `{"outcome": "not_found" | "marked" |
    /// "evicted", "failure_count": int | None}` (evicted once `failure_threshold` is reached).
    fn invalidate_by_health<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyDict>> {
        let manager = self.live()?;
        let outcome = py.detach(|| manager.invalidate_by_health(key));
        let dict = PyDict::new(py);
        let (name, count) = match outcome {
            HealthInvalidation::NotFound => ("not_found", None),
            HealthInvalidation::Marked { failure_count } => ("marked", Some(failure_count)),
            HealthInvalidation::Evicted { failure_count } => ("evicted", Some(failure_count)),
        };
        dict.set_item("outcome", name)?;
        dict.set_item("failure_count", count)?;
        Ok(dict)
    }

    /// The statistics, shaped as proxywhirl's `CacheStatistics.model_dump()`: `l1_stats`,
    /// `l2_stats`, `l3_stats` (hits, misses, current_size, evictions_*, hit_rate,
    /// total_evictions), promotions, demotions, `l*_degraded`, overall_hit_rate, total_size.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        ordered_json(py, &manager.get_statistics())
    }

    /// Removes the expired entries of every tier now; how many were removed.
    fn cleanup(&self, py: Python<'_>) -> PyResult<usize> {
        let manager = self.live()?;
        Ok(py.detach(|| manager.cleanup_now()).total())
    }

    /// Writes every live entry to `path` as JSONL (proxywhirl's export line, credentials
    /// `"***"`; with `encrypted=True` also their Fernet tokens, which `warm` of a cache with
    /// the same key imports). Returns how many entries were written.
    #[pyo3(signature = (path, *, encrypted = false))]
    fn export(&self, py: Python<'_>, path: PathBuf, encrypted: bool) -> PyResult<u64> {
        Ok(self.export_report(py, path, encrypted)?.0)
    }

    /// As `export`, returning `{"exported", "expired", "failed", "failures": [(key, reason)]}`.
    #[pyo3(name = "export_report", signature = (path, *, encrypted = false))]
    fn py_export_report<'py>(&self, py: Python<'py>, path: PathBuf, encrypted: bool) -> PyResult<Bound<'py, PyDict>> {
        let (exported, expired, failed, failures) = self.export_report(py, path, encrypted)?;
        let dict = PyDict::new(py);
        dict.set_item("exported", exported)?;
        dict.set_item("expired", expired)?;
        dict.set_item("failed", failed)?;
        dict.set_item("failures", failures)?;
        Ok(dict)
    }

    /// Loads the proxies of a `.json`, `.jsonl` or `.csv` file (`ttl` overrides the TTL).
    /// Returns `{"loaded", "skipped", "failed", "replaced", "issues_omitted", "issues": [...]}`;
    /// a file that cannot be used at all raises `WarmError`.
    #[pyo3(signature = (path, ttl = None))]
    fn warm<'py>(&self, py: Python<'py>, path: PathBuf, ttl: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
        let manager = self.live()?;
        let report = py
            .detach(|| manager.warm_from_file(&path, ttl))
            .map_err(errors::manager)?;
        warm_report(py, &report)
    }

    /// Writes L1's access data to L2/L3 (a restart then finds every use made so far).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let manager = self.live()?;
        py.detach(|| manager.flush()).map_err(errors::manager)
    }

    /// Stops the background threads, flushes and closes the tiers. Later calls raise
    /// `ClosedError`; closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let manager = &self.manager;
        py.detach(|| manager.close()).map_err(errors::manager)
    }

    /// One level (`"l1"`, `"l2"` or `"l3"`) for direct use, or `None` when it is disabled: its
    /// operations touch that tier only (no promotion, no write-through, no statistics).
    fn tier(slf: Bound<'_, Self>, level: &str) -> PyResult<Option<Tier>> {
        let level = crate::tier::parse_level(level)?;
        Tier::open(slf, level)
    }

    /// Switches the level `"l1"`, `"l2"` or `"l3"` on (`True`) or off (`False`) while the
    /// cache runs: a level switched off is skipped by every operation (L1 is emptied, its use
    /// recorded below; L2/L3 note what they miss, and never serve a copy they missed a write
    /// of once back on). Returns whether the level is configured.
    fn set_tier_enabled(&self, py: Python<'_>, level: &str, enabled: bool) -> PyResult<bool> {
        let level = crate::tier::parse_level(level)?;
        let manager = self.live()?;
        py.detach(|| manager.set_tier_enabled(level, enabled))
            .map_err(errors::manager)
    }

    /// Whether the level is configured and switched on.
    fn tier_enabled(&self, level: &str) -> PyResult<bool> {
        let level = crate::tier::parse_level(level)?;
        Ok(self.live()?.tier_enabled(level))
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The configuration as a dict (proxywhirl's `CacheConfig` fields; secrets as `"***"`).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ordered_json(py, self.manager.config())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().live()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let config = self.manager.config();
        format!(
            "Cache(l2_backend={:?}, l2_cache_dir={:?}, l3_backend={:?}, closed={})",
            config.l2_backend().to_string(),
            config.l2_cache_dir().display().to_string(),
            config.l3_backend().to_string(),
            if self.closed.load(Ordering::Acquire) {
                "True"
            } else {
                "False"
            },
        )
    }
}

/// A serializable value as Python objects, its fields in their serialization order (the
/// reference's `model_dump()` order): written as JSON and read back with Python's `json`.
fn ordered_json<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = pw_cache::model::pyjson::to_string(value).map_err(|e| errors::error(Kind::Error, e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

type ExportSummary = (u64, u64, u64, Vec<(String, String)>);

impl Cache {
    fn export_report(&self, py: Python<'_>, path: PathBuf, encrypted: bool) -> PyResult<ExportSummary> {
        let manager = self.live()?;
        let options = ExportOptions {
            credentials: if encrypted {
                ExportCredentials::Encrypted
            } else {
                ExportCredentials::Masked
            },
        };
        let report = py
            .detach(|| manager.export_to_file_with(&path, options))
            .map_err(errors::manager)?;
        Ok((report.exported, report.expired, report.failed, report.failures))
    }
}

/// The cache key proxywhirl generates for `proxy_url` (the first 16 hex digits of its MD5).
#[pyfunction]
pub fn generate_cache_key(proxy_url: &str) -> String {
    CacheManager::generate_cache_key(proxy_url)
}
