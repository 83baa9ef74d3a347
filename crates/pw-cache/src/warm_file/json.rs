//! `.json` warm files: one JSON document, an array of objects, read whole (at most
//! [`MAX_WARM_JSON_BYTES`] of it) and parsed twice: once to know it is a valid array, each item
//! dropped as soon as parsed, then an item at a time as the rows are handed over. Memory is the
//! document's bytes and one item, not the tree of the whole document (10 to 20 times the
//! document's size: 1.3 GB for 64 MiB of short rows).

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::row::{self, RawRow};
use super::{Input, IssueKind, MAX_WARM_JSON_BYTES, RowLocation, WarmFileError, WarmItem};

/// The items of a `.json` document.
pub(super) struct JsonItems {
    /// The document's bytes.
    bytes: Vec<u8>,
    /// Where the next item (or the array's `]`) is, after whitespace; [`None`] after the last.
    next_at: Option<usize>,
    /// The 1-based index of the next item.
    next: u64,
    /// How many bytes were read.
    bytes_read: u64,
}

impl JsonItems {
    /// Reads and checks the document of `input` (of size `file_len` if known), or finds why it
    /// is unusable: larger than [`MAX_WARM_JSON_BYTES`] (by `file_len` before anything is read,
    /// else by reading at most one byte more than the limit), unreadable, not UTF-8, not JSON,
    /// not an array.
    pub(super) fn read<R: Read>(input: Input<R>, file_len: Option<u64>, path: &Path) -> Result<Self, WarmFileError> {
        let too_large = |len: u64| WarmFileError::TooLarge {
            path: path.to_path_buf(),
            len,
            limit: MAX_WARM_JSON_BYTES,
        };
        if let Some(len) = file_len
            && len > MAX_WARM_JSON_BYTES
        {
            return Err(too_large(len));
        }
        // The size as found by `fstat` is only a hint: a file growing meanwhile is still read no
        // further than one byte past the limit.
        let capacity = file_len.map_or(0, |len| usize::try_from(len).unwrap_or(0));
        let mut bytes = Vec::with_capacity(capacity);
        let mut bounded = input.take(MAX_WARM_JSON_BYTES.saturating_add(1));
        bounded.read_to_end(&mut bytes).map_err(|source| WarmFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes_read = bounded.get_ref().bytes_read();
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > MAX_WARM_JSON_BYTES {
            return Err(too_large(len.max(file_len.unwrap_or(0))));
        }
        let body = check_document(&bytes, path)?;
        // A valid array: its `[` is its first byte that is not whitespace.
        let open = bytes.len() - body.len() + skip_whitespace(body);
        let mut items = Self {
            bytes,
            next_at: None,
            next: 1,
            bytes_read,
        };
        items.next_at = Some(items.after_whitespace(open + 1));
        Ok(items)
    }

    /// How many bytes of the file were read: all of it.
    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next item's row or issue; [`None`] after the last.
    pub(super) fn next(&mut self) -> Option<WarmItem> {
        let at = self.next_at.take()?;
        let rest = self.bytes.get(at..).unwrap_or_default();
        if rest.first() == Some(&b']') {
            return None;
        }
        let location = RowLocation::Item(self.next);
        self.next = self.next.saturating_add(1);
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        let Some(Ok(value)) = stream.next() else {
            // Not after the check of the whole document; reading stops.
            let reason = "invalid JSON (the document changed while being read?)".to_owned();
            return Some(row::issue(location, IssueKind::Failed, reason));
        };
        let end = self.after_whitespace(at + stream.byte_offset());
        if self.bytes.get(end) == Some(&b',') {
            self.next_at = Some(self.after_whitespace(end + 1));
        }
        Some(value_item(location, &value))
    }

    /// The index of the first byte at or after `at` that is not JSON whitespace.
    fn after_whitespace(&self, at: usize) -> usize {
        at + skip_whitespace(self.bytes.get(at..).unwrap_or_default())
    }
}

/// How many bytes of JSON whitespace `bytes` starts with.
fn skip_whitespace(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        .count()
}

/// Checks that a `.json` document is UTF-8, JSON and an array, parsing each item (as a
/// [`Value`], so with the same errors as parsing the whole document) and dropping it: the
/// document's text after a byte order mark, or why it is unusable.
fn check_document<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8], WarmFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
            + 1;
        WarmFileError::NotUtf8 {
            path: path.to_path_buf(),
            offset,
            line,
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let top: TopLevel = serde_json::from_str(text).map_err(|e| WarmFileError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
    })?;
    match top.0 {
        None => Ok(text.as_bytes()),
        Some(found) => Err(WarmFileError::NotArray {
            path: path.to_path_buf(),
            found,
        }),
    }
}

/// The top level of a valid JSON document: an array (`None`), or the type found. Its values are
/// parsed as [`Value`]s, and dropped.
struct TopLevel(Option<&'static str>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

/// The [`Visitor`] of [`TopLevel`].
struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("string")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel(Some("null")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<TopLevel, A::Error> {
        while items.next_element::<Value>()?.is_some() {}
        Ok(TopLevel(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<TopLevel, A::Error> {
        while entries.next_entry::<String, Value>()?.is_some() {}
        Ok(TopLevel(Some("object")))
    }
}

/// A JSON value that should be an object (an item of a `.json` array, a `.jsonl` line): its
/// row, or a skipped row.
pub(super) fn value_item(location: RowLocation, value: &Value) -> WarmItem {
    match value {
        Value::Object(map) => row::item(location, RawRow::from_json(map)),
        other => {
            let reason = format!("not a JSON object (found {})", json_type(other));
            row::issue(location, IssueKind::Skipped, reason)
        }
    }
}

/// The name of a JSON value's type, for reasons and errors.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// serde_json's message without its " at line L column C" suffix.
pub(super) fn json_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}
