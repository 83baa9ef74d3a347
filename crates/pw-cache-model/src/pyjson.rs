//! JSON text exactly as Python's `json.dumps(obj)` writes it with its defaults.
//!
//! proxywhirl writes its JSONL shards and exports with `json.dumps`, whose defaults differ from
//! `serde_json`'s compact output: `", "` between items, `": "` after keys, and
//! `ensure_ascii=True` (every character outside printable ASCII escaped as `\uXXXX`, with
//! surrogate pairs above U+FFFF). Writing the same bytes keeps files diffable against the
//! reference's and lets byte-level tests compare them.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// A `serde_json` formatter with Python's default separators and `ensure_ascii`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
        // serde_json's escapes are Python's: \" \\ \b \f \n \r \t and \u00XX in lowercase hex.
        serde_json::ser::CompactFormatter.write_char_escape(writer, escape)
    }
}

/// Serializes `value` as Python's `json.dumps(value)` would.
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(512);
    value.serialize(&mut Serializer::with_formatter(&mut out, PythonFormatter))?;
    // The formatter only writes ASCII, and serde_json writes valid UTF-8.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_dumps() {
        // Expected strings are what CPython 3.11's json.dumps prints for the same values.
        assert_eq!(
            to_string(&json!({"a": 1, "b": [1, 2], "c": null})).unwrap(),
            r#"{"a": 1, "b": [1, 2], "c": null}"#
        );
        assert_eq!(
            to_string("источник").unwrap(),
            r#""\u0438\u0441\u0442\u043e\u0447\u043d\u0438\u043a""#
        );
        assert_eq!(
            to_string("a\"b\\c\n\t\u{1}\u{7f}é😀").unwrap(),
            r#""a\"b\\c\n\t\u0001\u007f\u00e9\ud83d\ude00""#
        );
        assert_eq!(to_string(&json!([])).unwrap(), "[]");
        assert_eq!(to_string(&json!({})).unwrap(), "{}");
    }
}
