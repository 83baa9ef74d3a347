//! `pw_cache.EntryModel`: the cache's entries as instances of a pydantic model of the 21
//! fields (the compat layer's `CacheEntry`, or an application's own), built here in one step.
//!
//! Why it exists: a pydantic entry built from Python (`model_validate` of a dict made from a
//! `pw_cache.Entry`) costs more than proxywhirl's whole L1 hit. Built here, the field dict is
//! made once, with `datetime`s, the model's secret type and its health enum members already
//! in place, and the instance is either constructed the way pydantic's `model_construct` does
//! (the default: the engine's values are already valid) or validated by the model's own
//! validator (`validate=True`). The compat layer checks at import that both give equal models
//! and falls back to validating if a pydantic release ever makes them differ.
//!
//! The other direction, `to_entry`, reads a model's fields from its `__dict__` (falling back to
//! attribute access) into a `pw_cache.Entry`, checked as `Entry(...)` checks them.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyInt, PySet, PyString, PyType};

use pw_cache::model::fields;
use pw_cache::{CacheEntry, HealthStatus, OffsetDateTime, Secret};

use crate::convert::datetime_to_py;
use crate::entry::{Entry, credential, opt_datetime};
use crate::errors::{self, Kind};

/// `EntryModel(model, secret, health, *, validate=False)`: builds `model` instances from the
/// cache's entries (`cache.get(key, into=entry_model)`, `entry_model(entry)`) and reads them
/// back (`entry_model.to_entry(instance)`). `model` is a pydantic model with the 21 fields of
/// proxywhirl's `CacheEntry`, `secret` the type of its credential fields (`pydantic.SecretStr`),
/// `health` the enum of `health_status` (called with each status string once).
#[pyclass(frozen, name = "EntryModel", module = "pw_cache._native")]
pub struct EntryModel {
    model: Py<PyType>,
    secret: Py<PyAny>,
    /// The member of `health` for each [`HealthStatus`], in [`HealthStatus::ALL`]'s order.
    health: Vec<Py<PyAny>>,
    /// `model.__pydantic_validator__.validate_python` when validating.
    validator: Option<Py<PyAny>>,
    /// The 21 field names, copied into each constructed instance's `__pydantic_fields_set__`.
    fields_set: Py<PySet>,
}

/// `object.__new__` and `object.__setattr__`: pydantic models override `__setattr__`, and
/// `__pydantic_fields_set__` and friends are slots set as `model_construct` sets them.
fn object_method<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static NEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static SETATTR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let cell = if name == "__new__" { &NEW } else { &SETATTR };
    cell.get_or_try_init(py, || {
        py.import("builtins")?
            .getattr("object")?
            .getattr(name)
            .map(Bound::unbind)
    })
    .map(|f| f.bind(py).clone())
}

/// `entry` for Python: a `pw_cache.Entry`, or an instance of `into`'s model.
pub fn to_python<'py>(
    py: Python<'py>,
    entry: CacheEntry,
    into: Option<&Bound<'py, EntryModel>>,
) -> PyResult<Bound<'py, PyAny>> {
    match into {
        Some(model) => model.get().build(py, &entry),
        None => Ok(Bound::new(py, Entry::new(entry))?.into_any()),
    }
}

fn invalid(message: impl Into<String>) -> PyErr {
    errors::error(Kind::InvalidEntry, message)
}

impl EntryModel {
    /// `entry` as an instance of the model.
    pub fn build<'py>(&self, py: Python<'py>, entry: &CacheEntry) -> PyResult<Bound<'py, PyAny>> {
        let values = self.values(py, entry)?;
        if let Some(validator) = &self.validator {
            return validator.bind(py).call1((values,));
        }
        let instance = object_method(py, "__new__")?.call1((self.model.bind(py),))?;
        let setattr = object_method(py, "__setattr__")?;
        setattr.call1((&instance, intern!(py, "__dict__"), values))?;
        let fields_set = self.fields_set.bind(py).call_method0(intern!(py, "copy"))?;
        setattr.call1((&instance, intern!(py, "__pydantic_fields_set__"), fields_set))?;
        setattr.call1((&instance, intern!(py, "__pydantic_extra__"), py.None()))?;
        setattr.call1((&instance, intern!(py, "__pydantic_private__"), py.None()))?;
        Ok(instance)
    }

    fn secret<'py>(&self, py: Python<'py>, value: Option<&Secret>) -> PyResult<Bound<'py, PyAny>> {
        match value {
            None => Ok(py.None().into_bound(py)),
            Some(secret) => self.secret.bind(py).call1((secret.expose_secret(),)),
        }
    }

    fn health<'py>(&self, py: Python<'py>, status: HealthStatus) -> Bound<'py, PyAny> {
        let at = HealthStatus::ALL.iter().position(|s| *s == status).unwrap_or(0);
        self.health[at].bind(py).clone()
    }

    /// The field dict of `entry`, in the reference's field order.
    fn values<'py>(&self, py: Python<'py>, entry: &CacheEntry) -> PyResult<Bound<'py, PyDict>> {
        let time = |t: OffsetDateTime| datetime_to_py(py, t);
        let optional_time = |t: Option<OffsetDateTime>| -> PyResult<Bound<'py, PyAny>> {
            t.map_or_else(|| Ok(py.None().into_bound(py)), time)
        };
        let health = entry;
        let d = PyDict::new(py);
        d.set_item(intern!(py, fields::KEY), &entry.key)?;
        d.set_item(intern!(py, fields::PROXY_URL), &entry.proxy_url)?;
        d.set_item(intern!(py, fields::USERNAME), self.secret(py, entry.username.as_ref())?)?;
        d.set_item(intern!(py, fields::PASSWORD), self.secret(py, entry.password.as_ref())?)?;
        d.set_item(intern!(py, fields::SOURCE), &entry.source)?;
        d.set_item(intern!(py, fields::FETCH_TIME), time(entry.fetch_time)?)?;
        d.set_item(intern!(py, fields::LAST_ACCESSED), time(entry.last_accessed)?)?;
        d.set_item(intern!(py, fields::ACCESS_COUNT), entry.access_count)?;
        d.set_item(intern!(py, fields::TTL_SECONDS), entry.ttl_seconds)?;
        d.set_item(intern!(py, fields::EXPIRES_AT), time(entry.expires_at)?)?;
        d.set_item(intern!(py, fields::HEALTH_STATUS), self.health(py, entry.health_status))?;
        d.set_item(intern!(py, fields::FAILURE_COUNT), entry.failure_count)?;
        d.set_item(intern!(py, fields::EVICTED_FROM_L1), entry.evicted_from_l1)?;
        d.set_item(
            intern!(py, fields::LAST_HEALTH_CHECK),
            optional_time(health.last_health_check)?,
        )?;
        d.set_item(
            intern!(py, fields::CONSECUTIVE_HEALTH_FAILURES),
            health.consecutive_health_failures,
        )?;
        d.set_item(
            intern!(py, fields::CONSECUTIVE_HEALTH_SUCCESSES),
            health.consecutive_health_successes,
        )?;
        d.set_item(intern!(py, fields::RECOVERY_ATTEMPT), health.recovery_attempt)?;
        d.set_item(
            intern!(py, fields::NEXT_CHECK_TIME),
            optional_time(health.next_check_time)?,
        )?;
        d.set_item(
            intern!(py, fields::LAST_HEALTH_ERROR),
            health.last_health_error.as_deref(),
        )?;
        d.set_item(intern!(py, fields::TOTAL_HEALTH_CHECKS), health.total_health_checks)?;
        d.set_item(
            intern!(py, fields::TOTAL_HEALTH_CHECK_FAILURES),
            health.total_health_check_failures,
        )?;
        Ok(d)
    }
}

/// Reads a model's fields: from its `__dict__` when it has one, else by attribute. Field
/// names are interned strings (`intern!`), so a lookup hashes nothing.
struct Fields<'a, 'py> {
    model: &'a Bound<'py, PyAny>,
    dict: Option<Bound<'py, PyDict>>,
}

type Name<'a, 'py> = &'a Bound<'py, PyString>;

fn name_of(name: Name<'_, '_>) -> String {
    name.to_str().map(str::to_owned).unwrap_or_default()
}

impl<'py> Fields<'_, 'py> {
    fn get(&self, name: Name<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(dict) = &self.dict
            && let Some(value) = dict.get_item(name)?
        {
            return Ok(value);
        }
        self.model
            .getattr(name)
            .map_err(|_| invalid(format!("the entry has no field {:?}", name_of(name))))
    }

    fn optional(&self, name: Name<'_, 'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(Some(self.get(name)?).filter(|v| !v.is_none()))
    }

    fn string(&self, name: Name<'_, 'py>) -> PyResult<String> {
        let value = self.get(name)?;
        let text = value
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{} must be a str, not {}", name_of(name), type_name(&value))))?;
        Ok(text.to_str()?.to_owned())
    }

    fn count(&self, name: Name<'_, 'py>) -> PyResult<u64> {
        let value = self.get(name)?;
        if !value.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "{} must be an int, not {}",
                name_of(name),
                type_name(&value)
            )));
        }
        value
            .extract::<u64>()
            .map_err(|_| invalid(format!("{} must be an int >= 0, not {}", name_of(name), shown(&value))))
    }

    fn time(&self, name: Name<'_, 'py>) -> PyResult<Option<OffsetDateTime>> {
        opt_datetime(Some(&self.get(name)?), &name_of(name))
    }

    /// A credential; an empty one is none (proxywhirl stores it as NULL and reads back None).
    fn credential(&self, name: Name<'_, 'py>) -> PyResult<Option<Secret>> {
        Ok(credential(self.optional(name)?.as_ref(), &name_of(name))?.filter(|s| !s.is_empty()))
    }

    fn health_status(&self, name: Name<'_, 'py>) -> PyResult<HealthStatus> {
        let value = self.get(name)?;
        // A `str` enum member is its value as a `str`; any other enum gives `.value`.
        let text = match value.cast::<PyString>() {
            Ok(text) => text.to_str()?.to_owned(),
            Err(_) => value
                .getattr("value")
                .and_then(|v| v.extract::<String>())
                .map_err(|_| PyTypeError::new_err(format!("health_status must be a str, not {}", type_name(&value))))?,
        };
        text.parse::<HealthStatus>()
            .map_err(|e| invalid(format!("health_status: {e}")))
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// A value for an error message: its type, and for an `int` its value.
fn shown(value: &Bound<'_, PyAny>) -> String {
    match value.extract::<i128>() {
        Ok(n) => n.to_string(),
        Err(_) => type_name(value),
    }
}

#[pymethods]
impl EntryModel {
    #[new]
    #[pyo3(signature = (model, secret, health, *, validate = false))]
    fn py_new(
        py: Python<'_>,
        model: &Bound<'_, PyType>,
        secret: &Bound<'_, PyAny>,
        health: &Bound<'_, PyAny>,
        validate: bool,
    ) -> PyResult<Self> {
        let validator = model.getattr("__pydantic_validator__").map_err(|_| {
            PyTypeError::new_err(format!(
                "EntryModel needs a pydantic model class, not {}",
                model.name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        let health = HealthStatus::ALL
            .iter()
            .map(|status| {
                health
                    .call1((status.as_str(),))
                    .map(Bound::unbind)
                    .map_err(|e| PyValueError::new_err(format!("health({:?}) failed: {e}", status.as_str())))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            model: model.clone().unbind(),
            secret: secret.clone().unbind(),
            health,
            validator: if validate {
                Some(validator.getattr("validate_python")?.unbind())
            } else {
                None
            },
            fields_set: PySet::new(py, fields::ENTRY_FIELDS)?.unbind(),
        })
    }

    /// `entry_model(entry)`: the `pw_cache.Entry` `entry` as a model instance.
    fn __call__<'py>(&self, py: Python<'py>, entry: &Bound<'py, Entry>) -> PyResult<Bound<'py, PyAny>> {
        self.build(py, entry.get().entry())
    }

    /// The model instance `model` as a `pw_cache.Entry` (stored under `key` if given), its
    /// fields checked as `Entry(...)` checks them: `TypeError` for a field of the wrong type,
    /// `InvalidEntryError` for a wrong value, each naming the field.
    #[pyo3(signature = (model, key = None))]
    fn to_entry(&self, model: &Bound<'_, PyAny>, key: Option<String>) -> PyResult<Entry> {
        let py = model.py();
        let fields = Fields {
            model,
            dict: model
                .getattr(intern!(py, "__dict__"))
                .ok()
                .and_then(|d| d.cast_into::<PyDict>().ok()),
        };
        let fetch_time = fields
            .time(intern!(py, fields::FETCH_TIME))?
            .ok_or_else(|| PyTypeError::new_err("fetch_time must be a datetime, not None"))?;
        let mut entry = CacheEntry::new_at(
            fields.string(intern!(py, fields::PROXY_URL))?,
            fields.string(intern!(py, fields::SOURCE))?,
            fields.count(intern!(py, fields::TTL_SECONDS))?,
            fetch_time,
        )
        .map_err(|e| invalid(e.to_string()))?
        .with_credentials(
            fields.credential(intern!(py, fields::USERNAME))?,
            fields.credential(intern!(py, fields::PASSWORD))?,
        );
        entry = entry.with_key(match key {
            Some(key) => key,
            None => fields.string(intern!(py, fields::KEY))?,
        });
        if let Some(t) = fields.time(intern!(py, fields::LAST_ACCESSED))? {
            entry.last_accessed = t;
        }
        if let Some(t) = fields.time(intern!(py, fields::EXPIRES_AT))? {
            entry.expires_at = t;
        }
        entry.access_count = fields.count(intern!(py, fields::ACCESS_COUNT))?;
        entry.health_status = fields.health_status(intern!(py, fields::HEALTH_STATUS))?;
        entry.failure_count = fields.count(intern!(py, fields::FAILURE_COUNT))?;
        entry.evicted_from_l1 = fields.get(intern!(py, fields::EVICTED_FROM_L1))?.is_truthy()?;
        let health = &mut entry;
        health.last_health_check = fields.time(intern!(py, fields::LAST_HEALTH_CHECK))?;
        health.consecutive_health_failures = fields.count(intern!(py, fields::CONSECUTIVE_HEALTH_FAILURES))?;
        health.consecutive_health_successes = fields.count(intern!(py, fields::CONSECUTIVE_HEALTH_SUCCESSES))?;
        health.recovery_attempt = fields.count(intern!(py, fields::RECOVERY_ATTEMPT))?;
        health.next_check_time = fields.time(intern!(py, fields::NEXT_CHECK_TIME))?;
        health.last_health_error = match fields.optional(intern!(py, fields::LAST_HEALTH_ERROR))? {
            None => None,
            Some(_) => Some(fields.string(intern!(py, fields::LAST_HEALTH_ERROR))?),
        };
        health.total_health_checks = fields.count(intern!(py, fields::TOTAL_HEALTH_CHECKS))?;
        health.total_health_check_failures = fields.count(intern!(py, fields::TOTAL_HEALTH_CHECK_FAILURES))?;
        Ok(Entry::new(entry))
    }

    /// Whether instances are validated by the model (else constructed as `model_construct`
    /// does).
    #[getter]
    fn validate(&self) -> bool {
        self.validator.is_some()
    }

    /// The model class.
    #[getter]
    fn model(&self, py: Python<'_>) -> Py<PyType> {
        self.model.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = self.model.bind(py).name().map(|n| n.to_string()).unwrap_or_default();
        format!(
            "EntryModel({name}, validate={})",
            if self.validator.is_some() { "True" } else { "False" }
        )
    }
}
