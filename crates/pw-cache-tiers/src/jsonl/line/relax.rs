//! A line that serde_json refuses but Python's `json.loads` reads, made into JSON that
//! serde_json reads the way proxywhirl reads the original (see [`relax`]).
//!
//! This is no JSON parser: it walks the text only to know what is inside a string and which
//! top-level member a value belongs to, and rewrites a few tokens in place. serde_json then
//! parses the result as it parses every line.

/// What stands in for `NaN`, `Infinity`, `-Infinity` and a number beyond `f64`, all of which
/// `json.loads` reads as a float that pydantic refuses in every field of an entry: a value
/// every field of an entry refuses too, which a member the entry does not have ignores (as
/// pydantic ignores unknown members). A non-empty array, so that a credential member holding
/// it does not read as "no credential" (Python's NaN is true).
pub(super) const NON_FINITE: &str = "[null]";

/// Python's limit on the digits of an integer it reads (`sys.get_int_max_str_digits()`):
/// beyond it `json.loads` raises, so such a literal is left for serde_json to refuse.
const PY_INT_MAX_STR_DIGITS: usize = 4300;

/// A line made readable to serde_json, and what was changed in it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Relaxed {
    /// The text to parse instead of the line.
    pub(super) text: String,
    /// Top-level members whose strings had lone surrogate escapes, now `\ufffd` (a member name
    /// holding one is reported as `"(a member name)"`).
    pub(super) surrogates: Vec<String>,
    /// Top-level members that held `NaN`, `Infinity`, `-Infinity` or a number beyond `f64`,
    /// now [`NON_FINITE`].
    pub(super) non_finite: Vec<String>,
}

/// Where a string sits in the line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A member name of the top-level object comes next.
    Name,
    /// Anything else.
    Value,
}

/// Rewrites what serde_json refuses but `json.loads` reads (`line` is one whole line, without
/// its terminator), so that serde_json reads the result as proxywhirl reads `line`:
///
/// - a `\uXXXX` escape of a lone surrogate (`\uD800`..`\uDFFF` not forming a high-low pair),
///   which Python keeps in its `str` and no Rust string can hold, becomes `\ufffd` (U+FFFD, the
///   nearest legal value);
/// - `NaN`, `Infinity` and `-Infinity` outside strings, and a number too large for `f64`
///   (`1e400`, which Python reads as infinity), become [`NON_FINITE`];
/// - an integer literal beyond `u64` (or below `i64::MIN`), which serde_json reads as a float
///   (and the reader of an integer field then refuses, as pydantic refuses a float that large),
///   becomes a string of the same digits when it is the value of a top-level member named in
///   `int_members`: read from a string, an integer field reads the same value Python's `int`
///   holds (up to Python's limit of 4300 digits). Elsewhere it stays a float (a timestamp, a
///   string or a boolean field refuses it either way, as pydantic does; an unknown member
///   ignores it), unless it is beyond `f64` too (then as above).
///
/// `None` when nothing is to be changed (or the line is not UTF-8): the line's own reading
/// stands. Nothing else is checked: what is not JSON stays so.
pub(super) fn relax(line: &[u8], int_members: &[&str]) -> Option<Relaxed> {
    let text = std::str::from_utf8(line).ok()?;
    let bytes = text.as_bytes();
    let mut relaxed = Relaxed::default();
    // `text[copied..]` is not yet in `relaxed.text`.
    let mut copied = 0;
    let mut replace = |out: &mut Relaxed, from: usize, to: usize, with: &str| -> Option<()> {
        out.text.push_str(text.get(copied..from)?);
        out.text.push_str(with);
        copied = to;
        Some(())
    };
    let mut depth = 0_usize;
    let mut top_object = false;
    let mut expect = Expect::Value;
    let mut name: Option<(usize, usize)> = None;
    let mut member: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        let at_top = depth == 1 && top_object;
        match bytes[i] {
            b'"' => {
                let start = i;
                let is_name = at_top && expect == Expect::Name;
                let mut lone = false;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] != b'\\' {
                        i += 1;
                        continue;
                    }
                    let escape = if bytes.get(i + 1) == Some(&b'u') {
                        hex4(bytes, i + 2)
                    } else {
                        None
                    };
                    match escape {
                        Some(0xD800..=0xDBFF) if bytes.get(i + 6..i + 8) == Some(b"\\u".as_slice()) => {
                            if matches!(hex4(bytes, i + 8), Some(0xDC00..=0xDFFF)) {
                                i += 12;
                            } else {
                                replace(&mut relaxed, i, i + 6, "\\ufffd")?;
                                lone = true;
                                i += 6;
                            }
                        }
                        Some(0xD800..=0xDFFF) => {
                            replace(&mut relaxed, i, i + 6, "\\ufffd")?;
                            lone = true;
                            i += 6;
                        }
                        Some(_) => i += 6,
                        None => i += 2,
                    }
                }
                i = (i + 1).min(bytes.len());
                if is_name {
                    name = Some((start, i));
                    expect = Expect::Value;
                }
                if lone {
                    let label = match (&member, is_name) {
                        (Some(m), false) => m.clone(),
                        (_, true) => "(a member name)".to_owned(),
                        (None, false) => String::new(),
                    };
                    note(&mut relaxed.surrogates, label);
                }
            }
            b'{' | b'[' => {
                if depth == 0 {
                    top_object = bytes[i] == b'{';
                    expect = Expect::Name;
                }
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b',' => {
                if at_top {
                    expect = Expect::Name;
                    member = None;
                }
                i += 1;
            }
            b':' => {
                if at_top {
                    member = name.take().and_then(|(from, to)| text.get(from..to)).map(member_name);
                }
                i += 1;
            }
            b'N' | b'I' | b'-'
                if ["NaN", "Infinity", "-Infinity"]
                    .iter()
                    .any(|t| bytes[i..].starts_with(t.as_bytes())) =>
            {
                let len = if bytes[i] == b'N' {
                    3
                } else if bytes[i] == b'I' {
                    8
                } else {
                    9
                };
                replace(&mut relaxed, i, i + len, NON_FINITE)?;
                note(&mut relaxed.non_finite, member.clone().unwrap_or_default());
                i += len;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let end = number_end(bytes, i);
                i = end;
                let literal = text.get(start..end)?;
                let digits = literal.strip_prefix('-').unwrap_or(literal);
                let integral = digits.bytes().all(|b| b.is_ascii_digit());
                if digits.is_empty() || !digits.as_bytes()[0].is_ascii_digit() {
                    continue;
                }
                if integral {
                    let fits = if literal.starts_with('-') {
                        literal.parse::<i64>().is_ok()
                    } else {
                        literal.parse::<u64>().is_ok()
                    };
                    // A leading zero is not JSON, and past Python's limit json.loads raises:
                    // both stay for serde_json to refuse.
                    if fits || (digits.starts_with('0') && digits.len() > 1) || digits.len() > PY_INT_MAX_STR_DIGITS {
                        continue;
                    }
                    if depth == 1 && top_object && member.as_deref().is_some_and(|m| int_members.contains(&m)) {
                        replace(&mut relaxed, start, end, &format!("\"{literal}\""))?;
                        continue;
                    }
                }
                if literal.parse::<f64>().is_ok_and(f64::is_infinite) {
                    replace(&mut relaxed, start, end, NON_FINITE)?;
                    note(&mut relaxed.non_finite, member.clone().unwrap_or_default());
                }
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return None;
    }
    relaxed.text.push_str(text.get(copied..)?);
    Some(relaxed)
}

/// The value of the four hex digits at `bytes[at..at + 4]`, if they are hex digits.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Where the number starting at `bytes[start]` (a `-` or a digit) ends: `-`, digits, then an
/// optional fraction and exponent, as JSON writes them (a malformed one ends early, and
/// serde_json refuses what follows).
fn number_end(bytes: &[u8], start: usize) -> usize {
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start + usize::from(bytes[start] == b'-');
    i = digits(i);
    if bytes.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(i);
    }
    i
}

/// The name of a member from its JSON string (quotes included), escapes decoded.
fn member_name(raw: &str) -> String {
    if raw.contains('\\')
        && let Ok(name) = serde_json::from_str::<String>(raw)
    {
        return name;
    }
    let inner = raw.strip_prefix('"').unwrap_or(raw);
    inner.strip_suffix('"').unwrap_or(inner).to_owned()
}

/// Adds `member` to `notes` unless it is there.
fn note(notes: &mut Vec<String>, member: String) {
    if !notes.contains(&member) {
        notes.push(member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTS: &[&str] = &["access_count", "ttl_seconds"];

    fn relaxed(line: &str) -> Option<Relaxed> {
        relax(line.as_bytes(), INTS)
    }

    fn text(line: &str) -> String {
        relaxed(line).map_or_else(|| "(unchanged)".to_owned(), |r| r.text)
    }

    #[test]
    fn nothing_to_change_is_none() {
        for line in [
            r#"{"key": "k", "access_count": 18446744073709551615, "n": -9223372036854775808}"#,
            r#"{"key": "\ud83d\ude00 \u0041 \\ud800 \"NaN\" Infinity", "x": 1e300, "y": -0.5e-400}"#,
            r#"{"key": "k", "access_count": 1e20, "fetch_time": 2.5}"#,
            "not json at all",
            "",
        ] {
            assert_eq!(relaxed(line), None, "{line}");
        }
        assert_eq!(relax(b"{\"key\": \"\xff\", \"a\": NaN}", INTS), None, "not UTF-8");
    }

    #[test]
    fn lone_surrogate_escapes_become_the_replacement_character() {
        let r =
            relaxed(r#"{"key": "k", "source": "a\ud800b", "x": "\uDC00", "y": "\ud800\ud800\udc00\ud800"}"#).unwrap();
        assert_eq!(
            r.text,
            r#"{"key": "k", "source": "a\ufffdb", "x": "\ufffd", "y": "\ufffd\ud800\udc00\ufffd"}"#
        );
        assert_eq!(r.surrogates, ["source", "x", "y"]);
        assert!(r.non_finite.is_empty());
        // A high surrogate followed by another escape than a low surrogate is lone too.
        assert_eq!(
            text(r#"{"a": "\ud800\n\ud800\u0041"}"#),
            r#"{"a": "\ufffd\n\ufffd\u0041"}"#
        );
        // An escaped backslash is no escape of a surrogate.
        assert_eq!(
            text(r#"{"a": "\\ud800", "b": NaN}"#),
            r#"{"a": "\\ud800", "b": [null]}"#
        );
        let key = relaxed(r#"{"\udfff": 1}"#).unwrap();
        assert_eq!(key.surrogates, ["(a member name)"]);
        let serde: String = serde_json::from_str(&text(r#""\ud800x""#)).unwrap();
        assert_eq!(serde, "\u{fffd}x");
    }

    #[test]
    fn non_finite_numbers_become_a_value_no_field_takes() {
        let r = relaxed(r#"{"key": "k", "access_count": NaN, "b": [Infinity, -Infinity], "c": {"d": 1e400}}"#).unwrap();
        assert_eq!(
            r.text,
            r#"{"key": "k", "access_count": [null], "b": [[null], [null]], "c": {"d": [null]}}"#
        );
        assert_eq!(r.non_finite, ["access_count", "b", "c"]);
        assert_eq!(text(r#"{"x": -1.5e999, "s": "NaN"}"#), r#"{"x": [null], "s": "NaN"}"#);
        // Not NaN: a string, or a name that only starts like it (serde_json refuses the rest).
        assert_eq!(text(r#"{"s": "Infinity", "t": true}"#), "(unchanged)");
        let digits = "9".repeat(400);
        assert_eq!(text(&format!(r#"{{"x": {digits}}}"#)), r#"{"x": [null]}"#);
    }

    #[test]
    fn integers_beyond_u64_in_integer_members_become_strings() {
        let r = relaxed(
            r#"{"key": "k", "access_count": 18446744073709551621, "ttl_seconds": -9223372036854775809, "other": 18446744073709551621}"#,
        )
        .unwrap();
        assert_eq!(
            r.text,
            r#"{"key": "k", "access_count": "18446744073709551621", "ttl_seconds": "-9223372036854775809", "other": 18446744073709551621}"#
        );
        assert!(r.surrogates.is_empty() && r.non_finite.is_empty());
        // Only the member's own value, not a nested one; escapes in the name are decoded.
        assert_eq!(
            text(r#"{"access_count": [18446744073709551616], "access\u005fcount": 18446744073709551616}"#),
            r#"{"access_count": [18446744073709551616], "access\u005fcount": "18446744073709551616"}"#
        );
        // A float stays a float (pydantic refuses 1e20 and 2e19 for an int), and so does a
        // member of a nested object or of a top-level array.
        assert_eq!(
            text(r#"{"access_count": 2e19, "n": {"access_count": 18446744073709551616}}"#),
            "(unchanged)"
        );
        assert_eq!(text(r#"[{"access_count": 18446744073709551616}]"#), "(unchanged)");
        // Leading zeros are not JSON; more digits than Python reads make json.loads raise.
        assert_eq!(text(r#"{"access_count": 018446744073709551616}"#), "(unchanged)");
        let long = "1".repeat(PY_INT_MAX_STR_DIGITS + 1);
        assert_eq!(text(&format!(r#"{{"access_count": {long}}}"#)), "(unchanged)");
        let at_limit = "1".repeat(PY_INT_MAX_STR_DIGITS);
        assert_eq!(
            text(&format!(r#"{{"access_count": {at_limit}}}"#)),
            format!(r#"{{"access_count": "{at_limit}"}}"#)
        );
    }

    #[test]
    fn damaged_text_does_not_panic() {
        for line in [
            "\"\\u",
            "\"\\ud8",
            "\"\\ud800\\u",
            "\"\\ud800\\",
            "{\"a\": -",
            "{\"a\": 1e",
            "{\"a\": -I",
            "\"é\\ud800",
            "{\"é",
            "{\"é\": NaN",
            "]]]}}}",
            "{:::,,,}",
            "-",
        ] {
            let _ = relaxed(line);
        }
        assert_eq!(text("\"é\\ud800"), "\"é\\ufffd");
    }
}
