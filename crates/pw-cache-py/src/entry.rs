//! `pw_cache.Entry` (one cached proxy, read-only) and `pw_cache.Secret` (a credential that
//! never prints).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use pw_cache::model::timestamp::{now_utc, truncate_to_micros};
use pw_cache::{CacheEntry, HealthStatus, OffsetDateTime, Secret};

use crate::convert::{datetime_to_py, py_to_datetime};
use crate::errors::{self, Kind};

/// What `repr` and `str` of a secret show (pydantic's `SecretStr` mask).
pub const MASK: &str = "**********";

/// `pw_cache.Secret`: a credential. `str()` and `repr()` show `**********`, never the value;
/// `get_secret_value()` returns it. Compares equal to a `Secret` of the same value.
#[pyclass(frozen, name = "Secret", module = "pw_cache._native")]
pub struct PySecret {
    secret: Secret,
}

impl PySecret {
    /// Wraps a secret.
    pub fn new(secret: Secret) -> Self {
        Self { secret }
    }

    /// The value (for the engine; never formatted).
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

#[pymethods]
impl PySecret {
    /// `Secret(value)`.
    #[new]
    fn py_new(value: String) -> Self {
        Self::new(Secret::new(value))
    }

    /// The value.
    fn get_secret_value(&self) -> String {
        self.secret.expose_secret().to_owned()
    }

    fn __repr__(&self) -> String {
        format!("Secret('{MASK}')")
    }

    fn __str__(&self) -> &'static str {
        MASK
    }

    fn __len__(&self) -> usize {
        self.secret.len()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PySecret>().is_ok_and(|o| o.get().secret == self.secret)
    }

    fn __hash__(&self) -> u64 {
        // Equal secrets must hash alike; the hash must not reveal the value: one bucket.
        0x005e_c7e7
    }
}

/// A credential argument: `None`, a `str` or a `pw_cache.Secret`.
pub fn credential(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Secret>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(secret) = value.cast::<PySecret>() {
        return Ok(Some(secret.get().secret.clone()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Some(Secret::new(s.to_str()?)));
    }
    if value.hasattr("get_secret_value")? {
        let inner = value.call_method0("get_secret_value")?;
        if let Ok(s) = inner.cast::<PyString>() {
            return Ok(Some(Secret::new(s.to_str()?)));
        }
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be None, a str or a pw_cache.Secret"
    )))
}

/// `pw_cache.Entry`: one cached proxy, the 21 fields of proxywhirl's `CacheEntry` as read-only
/// attributes. Timestamps are timezone-aware `datetime`s, `health_status` a `str`, `username`
/// and `password` `pw_cache.Secret`s (or `None`).
#[pyclass(frozen, name = "Entry", module = "pw_cache._native")]
pub struct Entry {
    entry: CacheEntry,
}

impl Entry {
    /// Wraps an entry.
    pub fn new(entry: CacheEntry) -> Self {
        Self { entry }
    }

    /// The entry.
    pub fn entry(&self) -> &CacheEntry {
        &self.entry
    }
}

/// An optional timestamp argument: `None` (or absent) is none, a `datetime` its instant in
/// microseconds.
pub(crate) fn opt_datetime(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<OffsetDateTime>> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(v) => py_to_datetime(v, what).map(|d| Some(truncate_to_micros(d))),
    }
}

fn invalid(message: impl Into<String>) -> PyErr {
    errors::error(Kind::InvalidEntry, message)
}

#[pymethods]
impl Entry {
    /// `Entry(proxy_url, source, *, ttl_seconds=3600, username=None, password=None, key=None,
    /// fetch_time=None, ...)`: a new entry; the key is generated from the URL unless given,
    /// `fetch_time` and `last_accessed` default to now, `expires_at` to `fetch_time +
    /// ttl_seconds`. Every other field of the model can be given too.
    #[new]
    #[pyo3(signature = (
        proxy_url, source = "user".to_owned(), *, ttl_seconds = 3600, username = None, password = None,
        key = None, fetch_time = None, last_accessed = None, access_count = 0, expires_at = None,
        health_status = "unknown".to_owned(), failure_count = 0, evicted_from_l1 = false,
        last_health_check = None, consecutive_health_failures = 0, consecutive_health_successes = 0,
        recovery_attempt = 0, next_check_time = None, last_health_error = None, total_health_checks = 0,
        total_health_check_failures = 0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        proxy_url: String,
        source: String,
        ttl_seconds: u64,
        username: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
        key: Option<String>,
        fetch_time: Option<&Bound<'_, PyAny>>,
        last_accessed: Option<&Bound<'_, PyAny>>,
        access_count: u64,
        expires_at: Option<&Bound<'_, PyAny>>,
        health_status: String,
        failure_count: u64,
        evicted_from_l1: bool,
        last_health_check: Option<&Bound<'_, PyAny>>,
        consecutive_health_failures: u64,
        consecutive_health_successes: u64,
        recovery_attempt: u64,
        next_check_time: Option<&Bound<'_, PyAny>>,
        last_health_error: Option<String>,
        total_health_checks: u64,
        total_health_check_failures: u64,
    ) -> PyResult<Self> {
        let fetch = opt_datetime(fetch_time, "fetch_time")?.unwrap_or_else(|| truncate_to_micros(now_utc()));
        let mut entry = CacheEntry::new_at(proxy_url, source, ttl_seconds, fetch)
            .map_err(|e| invalid(e.to_string()))?
            .with_credentials(credential(username, "username")?, credential(password, "password")?);
        if let Some(key) = key {
            entry = entry.with_key(key);
        }
        if let Some(t) = opt_datetime(last_accessed, "last_accessed")? {
            entry.last_accessed = t;
        }
        if let Some(t) = opt_datetime(expires_at, "expires_at")? {
            entry.expires_at = t;
        }
        entry.health_status = health_status
            .parse::<HealthStatus>()
            .map_err(|e| invalid(format!("health_status: {e}")))?;
        entry.access_count = access_count;
        entry.failure_count = failure_count;
        entry.evicted_from_l1 = evicted_from_l1;
        entry.last_health_check = opt_datetime(last_health_check, "last_health_check")?;
        entry.consecutive_health_failures = consecutive_health_failures;
        entry.consecutive_health_successes = consecutive_health_successes;
        entry.recovery_attempt = recovery_attempt;
        entry.next_check_time = opt_datetime(next_check_time, "next_check_time")?;
        entry.last_health_error = last_health_error;
        entry.total_health_checks = total_health_checks;
        entry.total_health_check_failures = total_health_check_failures;
        Ok(Self::new(entry))
    }

    /// Unique cache key.
    #[getter]
    fn key(&self) -> &str {
        &self.entry.key
    }

    /// Full proxy URL.
    #[getter]
    fn proxy_url(&self) -> &str {
        &self.entry.proxy_url
    }

    /// Proxy username (a `Secret`), or `None`.
    #[getter]
    fn username(&self) -> Option<PySecret> {
        self.entry.username.clone().map(PySecret::new)
    }

    /// Proxy password (a `Secret`), or `None`.
    #[getter]
    fn password(&self) -> Option<PySecret> {
        self.entry.password.clone().map(PySecret::new)
    }

    /// Where the proxy came from.
    #[getter]
    fn source(&self) -> &str {
        &self.entry.source
    }

    /// When the proxy was fetched.
    #[getter]
    fn fetch_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime_to_py(py, self.entry.fetch_time)
    }

    /// Last time the cache served it.
    #[getter]
    fn last_accessed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime_to_py(py, self.entry.last_accessed)
    }

    /// How many times the cache served it.
    #[getter]
    fn access_count(&self) -> u64 {
        self.entry.access_count
    }

    /// Time to live, in seconds.
    #[getter]
    fn ttl_seconds(&self) -> u64 {
        self.entry.ttl_seconds
    }

    /// When it expires (expired from this instant on).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime_to_py(py, self.entry.expires_at)
    }

    /// `healthy`, `unhealthy`, `dead`, `unknown` ... (proxywhirl's `HealthStatus` values).
    #[getter]
    fn health_status(&self) -> String {
        self.entry.health_status.to_string()
    }

    /// Failures reported through health invalidation.
    #[getter]
    fn failure_count(&self) -> u64 {
        self.entry.failure_count
    }

    /// Whether L1 evicted it.
    #[getter]
    fn evicted_from_l1(&self) -> bool {
        self.entry.evicted_from_l1
    }

    /// Last health check, or `None`.
    #[getter]
    fn last_health_check<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.entry.last_health_check.map(|t| datetime_to_py(py, t)).transpose()
    }

    /// Health checks failed in a row.
    #[getter]
    fn consecutive_health_failures(&self) -> u64 {
        self.entry.consecutive_health_failures
    }

    /// Health checks passed in a row.
    #[getter]
    fn consecutive_health_successes(&self) -> u64 {
        self.entry.consecutive_health_successes
    }

    /// Current recovery attempt.
    #[getter]
    fn recovery_attempt(&self) -> u64 {
        self.entry.recovery_attempt
    }

    /// When the next health check is due, or `None`.
    #[getter]
    fn next_check_time<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.entry.next_check_time.map(|t| datetime_to_py(py, t)).transpose()
    }

    /// Error of the last failed health check, or `None`.
    #[getter]
    fn last_health_error(&self) -> Option<&str> {
        self.entry.last_health_error.as_deref()
    }

    /// Health checks performed.
    #[getter]
    fn total_health_checks(&self) -> u64 {
        self.entry.total_health_checks
    }

    /// Health checks failed.
    #[getter]
    fn total_health_check_failures(&self) -> u64 {
        self.entry.total_health_check_failures
    }

    /// Whether it has expired now (`now >= expires_at`).
    #[getter]
    fn is_expired(&self) -> bool {
        self.entry.is_expired()
    }

    /// Whether the proxy is healthy (`health_status == "healthy"`).
    #[getter]
    fn is_healthy(&self) -> bool {
        self.entry.is_healthy()
    }

    /// The 21 fields as a dict (timestamps as `datetime`, credentials as `Secret`s or `None`).
    fn to_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let dict = PyDict::new(py);
        for name in pw_cache::model::fields::ENTRY_FIELDS {
            dict.set_item(name, slf.getattr(name)?)?;
        }
        Ok(dict)
    }

    /// The JSON line proxywhirl's export writes (`json.dumps(entry.model_dump(mode="json"))`):
    /// credentials as `"***"`.
    fn to_json(&self) -> String {
        self.entry.to_json_line()
    }

    fn __repr__(&self) -> String {
        format!(
            "Entry(key={:?}, proxy_url={:?}, source={:?}, ttl_seconds={}, health_status={:?}, username={}, password={})",
            self.entry.key,
            self.entry.proxy_url,
            self.entry.source,
            self.entry.ttl_seconds,
            self.entry.health_status.to_string(),
            if self.entry.username.is_some() {
                "Secret('**********')"
            } else {
                "None"
            },
            if self.entry.password.is_some() {
                "Secret('**********')"
            } else {
                "None"
            },
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Entry>().is_ok_and(|o| o.get().entry == self.entry)
    }
}
