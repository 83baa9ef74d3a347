//! The engine's `tracing` events, forwarded to Python's `logging` (logger `pw_cache`).
//!
//! A small [`tracing::Subscriber`] is installed as this extension's global default when the
//! module is imported (the extension links its own copy of `tracing`, so it does not touch any
//! other library's). Each event of level `DEBUG` or above becomes one
//! `logging.getLogger("pw_cache").log(level, message)` call, if that logger is enabled for the
//! level: the message, then the event's other fields as ` key=value`. The engine's messages and
//! fields never hold a credential, a key or a token.
//!
//! Events are raised by threads that do not hold the GIL (every disk or Redis call releases it,
//! and the engine has background threads): the subscriber attaches to the interpreter for the
//! call ([`Python::try_attach`]), and drops the event when it cannot (during interpreter
//! shutdown). Spans are not tracked.

use std::fmt::{self, Write as _};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The name of the Python logger the events go to.
pub const LOGGER_NAME: &str = "pw_cache";

/// Installs the subscriber as this extension's global default (once; later calls do nothing).
pub fn install() {
    // Fails only when a default is already set (a second import of the module): keep it.
    let _ = tracing::subscriber::set_global_default(PythonLogging);
}

/// Forwards events to Python's `logging`.
#[derive(Debug, Clone, Copy)]
pub struct PythonLogging;

/// Python's level number for a `tracing` level.
fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Collects an event's message and fields as text.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

fn forward(py: Python<'_>, level: u8, text: &str) -> PyResult<()> {
    let logger = LOGGER.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("logging")?
            .call_method1("getLogger", (LOGGER_NAME,))?
            .unbind())
    })?;
    let logger = logger.bind(py);
    if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        logger.call_method1("log", (level, "%s", text))?;
    }
    Ok(())
}

impl Subscriber for PythonLogging {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::DEBUG
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message::default();
        event.record(&mut message);
        let text = format!("{}{}", message.message, message.fields);
        let level = python_level(*event.metadata().level());
        let _ = Python::try_attach(|py| {
            if let Err(e) = forward(py, level, &text) {
                // A failing handler must not raise into the engine: report it as logging does.
                e.write_unraisable(py, None);
            }
        });
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
