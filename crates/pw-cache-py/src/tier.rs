//! `pw_cache.Tier`: one level of a [`Cache`], used directly ([`CacheManager::tier`]).
//!
//! A direct operation is only that tier's: no lookup in the other tiers, no promotion, no
//! write-through, no statistics. It is for tests, tools and compatibility layers (proxywhirl's
//! `manager.l1_tier.get(key)`); everything else goes through `Cache`, which keeps the tiers
//! consistent.
//!
//! [`CacheManager::tier`]: pw_cache::CacheManager::tier

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use pw_cache::{CacheTier, CacheTierType};

use crate::cache::Cache;
use crate::entry::Entry;
use crate::entry_model::EntryModel;
use crate::errors;

/// `Cache.tier(level)`: one level (`"l1"`, `"l2"` or `"l3"`) of a cache, used on its own.
/// It keeps its cache open: the cache closes when neither is referenced any more (or on
/// `Cache.close`, after which every method raises `ClosedError`).
#[pyclass(frozen, name = "Tier", module = "pw_cache._native")]
pub struct Tier {
    cache: Py<Cache>,
    level: CacheTierType,
}

/// The level named `name` (`"l1"`, `"l2"`, `"l3"`); `ValueError` otherwise.
pub fn parse_level(name: &str) -> PyResult<CacheTierType> {
    match name {
        "l1" => Ok(CacheTierType::L1),
        "l2" => Ok(CacheTierType::L2),
        "l3" => Ok(CacheTierType::L3),
        other => Err(PyValueError::new_err(format!(
            "unknown tier level {other:?}: expected \"l1\", \"l2\" or \"l3\""
        ))),
    }
}

impl Tier {
    /// The tier of `cache` at `level`, or `None` when that level is disabled.
    pub fn open(cache: Bound<'_, Cache>, level: CacheTierType) -> PyResult<Option<Tier>> {
        if cache.get().live()?.tier(level).is_none() {
            return Ok(None);
        }
        Ok(Some(Tier {
            cache: cache.unbind(),
            level,
        }))
    }

    /// The tier, unless its cache was closed (`ClosedError`).
    fn tier(&self) -> PyResult<&dyn CacheTier> {
        let manager = self.cache.get().live()?;
        // A level present when the handle was made stays present: tiers are fixed at open.
        manager
            .tier(self.level)
            .ok_or_else(|| errors::error(errors::Kind::Tier, format!("tier {} is not enabled", self.level)))
    }
}

#[pymethods]
impl Tier {
    /// The entry under `key` as this tier stores it (expired or not), or `None`. With
    /// `into=EntryModel(...)`, the entry comes as an instance of that model.
    #[pyo3(signature = (key, *, into = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        into: Option<&Bound<'py, EntryModel>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let tier = self.tier()?;
        let found = py.detach(|| tier.get(key)).map_err(errors::tier)?;
        found
            .map(|entry| crate::entry_model::to_python(py, entry, into))
            .transpose()
    }

    /// Stores `entry` under `entry.key` in this tier only, replacing what was there.
    fn put(&self, py: Python<'_>, entry: &Bound<'_, Entry>) -> PyResult<()> {
        let tier = self.tier()?;
        let entry = entry.get().entry();
        py.detach(|| tier.put(entry)).map_err(errors::tier)
    }

    /// Removes `key` from this tier only; whether it was there.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let tier = self.tier()?;
        py.detach(|| tier.delete(key)).map_err(errors::tier)
    }

    /// Removes every entry of this tier; how many there were.
    fn clear(&self, py: Python<'_>) -> PyResult<usize> {
        let tier = self.tier()?;
        py.detach(|| tier.clear()).map_err(errors::tier)
    }

    /// How many entries this tier holds (expired ones included).
    fn size(&self, py: Python<'_>) -> PyResult<usize> {
        let tier = self.tier()?;
        py.detach(|| tier.size()).map_err(errors::tier)
    }

    /// Every key this tier holds (no order promised).
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let tier = self.tier()?;
        py.detach(|| tier.keys()).map_err(errors::tier)
    }

    /// Whether this tier holds `key` (expired or not).
    fn contains(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let tier = self.tier()?;
        py.detach(|| tier.contains(key)).map_err(errors::tier)
    }

    /// The tier's consecutive failures (three disable it until a success).
    #[getter]
    fn consecutive_failures(&self) -> PyResult<u32> {
        Ok(self.tier()?.health().consecutive_failures())
    }

    /// `"l1"`, `"l2"` or `"l3"`.
    #[getter]
    fn level(&self) -> &'static str {
        match self.level {
            CacheTierType::L1 => "l1",
            CacheTierType::L2 => "l2",
            CacheTierType::L3 => "l3",
        }
    }

    fn __repr__(&self) -> String {
        format!("Tier(level={:?})", self.level())
    }
}
