//! Conversions between Python objects and the engine's values: JSON values (config documents,
//! statistics) and timestamps (`datetime`).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde_json::Value;

use pw_cache::OffsetDateTime;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// How deep a Python value given as a config option may nest.
const MAX_DEPTH: usize = 16;

/// A Python value as JSON: `None`, `bool`, `int`, `float`, `str`, `os.PathLike` (its
/// `os.fspath`, which must be a `str`), lists, tuples and dicts with `str` keys. `what` names
/// the option in the error of anything else.
pub fn py_to_json(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    to_json(value, what, 0)
}

fn to_json(value: &Bound<'_, PyAny>, what: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!("{what}: nested too deeply")));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<u64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = value.extract::<i64>() {
            return Ok(Value::from(n));
        }
        return Err(PyValueError::new_err(format!("{what}: integer out of range")));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{what}: not a finite number")));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(d) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{what}: dictionary keys must be str")))?;
            let inner = format!("{what}.{key}");
            let v = to_json(&v, &inner, depth + 1)?;
            map.insert(key, v);
        }
        return Ok(Value::Object(map));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in value.try_iter()? {
            out.push(to_json(&item?, what, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if value.hasattr("__fspath__")? {
        let path = value.py().import("os")?.call_method1("fspath", (value,))?;
        if let Ok(s) = path.cast::<PyString>() {
            return Ok(Value::String(s.to_str()?.to_owned()));
        }
        return Err(PyTypeError::new_err(format!(
            "{what}: a path must be a str path, not bytes"
        )));
    }
    let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(PyTypeError::new_err(format!("{what}: unsupported type {type_name}")))
}

/// A JSON value as a Python object (`dict`, `list`, `str`, `int`, `float`, `bool`, `None`).
pub fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// `datetime.datetime`, looked up once.
fn datetime_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    DATETIME.import(py, "datetime", "datetime")
}

/// A timestamp as a timezone-aware `datetime.datetime` (its own UTC offset kept; `tzinfo` is
/// `datetime.timezone.utc` for UTC, as `datetime.fromisoformat` gives). Sub-microsecond digits
/// are truncated. Built by calling the `datetime` type with its parts (the limited API has no
/// faster constructor); the type and `timezone.utc` are looked up once.
pub fn datetime_to_py<'py>(py: Python<'py>, dt: OffsetDateTime) -> PyResult<Bound<'py, PyAny>> {
    let tz = timezone_to_py(py, dt.offset().whole_seconds())?;
    datetime_type(py)?.call1((
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond(),
        tz,
    ))
}

/// `datetime.timezone.utc` for a zero offset, else `datetime.timezone(timedelta(seconds=…))`.
fn timezone_to_py(py: Python<'_>, offset_seconds: i32) -> PyResult<Bound<'_, PyAny>> {
    static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static TIMEZONE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    if offset_seconds == 0 {
        return UTC
            .get_or_try_init(py, || {
                py.import("datetime")?
                    .getattr("timezone")?
                    .getattr("utc")
                    .map(Bound::unbind)
            })
            .map(|utc| utc.bind(py).clone());
    }
    let delta = TIMEDELTA
        .import(py, "datetime", "timedelta")?
        .call((), Some(&[("seconds", offset_seconds)].into_py_dict(py)?))?;
    TIMEZONE.import(py, "datetime", "timezone")?.call1((delta,))
}

/// A `datetime.datetime` as a timestamp: an aware one at its instant (microseconds, its own
/// offset kept), a naive one read as UTC. `what` names the argument in the error of anything
/// else. Read from the datetime's parts (`year` … `microsecond`, `utcoffset()`), so a subclass
/// or a `zoneinfo` time zone gives the offset it has at that moment.
pub fn py_to_datetime(value: &Bound<'_, PyAny>, what: &str) -> PyResult<OffsetDateTime> {
    let py = value.py();
    if !value.is_instance(datetime_type(py)?)? {
        let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(PyTypeError::new_err(format!(
            "{what} must be a datetime.datetime, not {type_name}"
        )));
    }
    let part = |name: &Bound<'_, PyString>| -> PyResult<i32> { value.getattr(name)?.extract() };
    let bad = |e: &dyn std::fmt::Display| PyValueError::new_err(format!("{what}: {e}"));
    let month = u8::try_from(part(intern!(py, "month"))?).map_err(|e| bad(&e))?;
    let date = Date::from_calendar_date(
        part(intern!(py, "year"))?,
        Month::try_from(month).map_err(|e| bad(&e))?,
        u8::try_from(part(intern!(py, "day"))?).map_err(|e| bad(&e))?,
    )
    .map_err(|e| bad(&e))?;
    let clock = |name: &Bound<'_, PyString>| -> PyResult<u8> { u8::try_from(part(name)?).map_err(|e| bad(&e)) };
    let time = Time::from_hms_micro(
        clock(intern!(py, "hour"))?,
        clock(intern!(py, "minute"))?,
        clock(intern!(py, "second"))?,
        u32::try_from(part(intern!(py, "microsecond"))?).map_err(|e| bad(&e))?,
    )
    .map_err(|e| bad(&e))?;
    let offset = value.call_method0(intern!(py, "utcoffset"))?;
    let offset_seconds = if offset.is_none() {
        0
    } else {
        let days: i32 = offset.getattr(intern!(py, "days"))?.extract()?;
        let seconds: i32 = offset.getattr(intern!(py, "seconds"))?.extract()?;
        let micros: i32 = offset.getattr(intern!(py, "microseconds"))?.extract()?;
        if micros != 0 {
            return Err(bad(&"a UTC offset with microseconds is not supported"));
        }
        days * 86_400 + seconds
    };
    let offset = UtcOffset::from_whole_seconds(offset_seconds).map_err(|e| bad(&e))?;
    Ok(PrimitiveDateTime::new(date, time).assume_offset(offset))
}
