//! The integers pydantic 2 reads, in lax mode, from a REAL or from text: how a count stored as
//! anything but an INTEGER is read (see [`crate::sqlite`], "Rows").

/// An integer as read from a stored value: its sign and its magnitude, `None` beyond `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LaxInt {
    pub(super) negative: bool,
    pub(super) magnitude: Option<u64>,
}

/// The integer pydantic 2 reads from a float: a finite value without a fraction, strictly
/// between -2^63 and 2^63; else why not.
pub(super) fn int_of_real(x: f64) -> Result<LaxInt, &'static str> {
    // 2^63, exactly (i64::MAX rounds up to it).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !x.is_finite() {
        Err("is not a finite number")
    } else if x % 1.0 != 0.0 {
        Err("has a fractional part")
    } else if !(-LIMIT < x && x < LIMIT) {
        Err("is beyond what proxywhirl reads from a REAL (±2^63)")
    } else {
        let n = x as i64;
        Ok(LaxInt {
            negative: n < 0,
            magnitude: Some(n.unsigned_abs()),
        })
    }
}

/// Most digits pydantic reads in the text of an integer (Python's own limit).
const MAX_INT_DIGITS: usize = 4300;

/// The integer pydantic 2 (pydantic-core 2.50.5, lax mode) reads from a string, `None` when it
/// reads none. It takes the text as a JSON integer (`-?(0|[1-9][0-9]*)`), or else cleans it
/// and takes the result as one: surrounding whitespace (Unicode's) trimmed, one `+` or `-`
/// (not `+-`, `--`, `-+`) taken off and remembered, leading zeros dropped together with any
/// underscores among them, a fraction of only zeros (`.0`, `.000`, not `.`) dropped, and
/// underscores dropped when none is first, last or doubled. At most 4300 digits. So
/// `" +1_000.00 "` is 1000, `"0005"` is 5, `"-0"` is 0; `"5."`, `"1e3"`, `"0x10"`, `"٣"`,
/// `"1__0"` are none; and pydantic's quirks come along: `"0-5"` is −5, `"0__1"` is 1.
pub(super) fn python_int(text: &str) -> Option<LaxInt> {
    json_int(false, text, false).or_else(|| {
        let (negative, body, underscores) = clean_int(text)?;
        json_int(negative, body, underscores)
    })
}

/// `body`, with a minus before it when `minus` and without its underscores when
/// `skip_underscores`, as a JSON integer of at most [`MAX_INT_DIGITS`] digits.
fn json_int(minus: bool, body: &str, skip_underscores: bool) -> Option<LaxInt> {
    let mut bytes = body.bytes().filter(|b| !(skip_underscores && *b == b'_')).peekable();
    let mut negative = minus;
    if bytes.next_if_eq(&b'-').is_some() {
        if minus {
            return None;
        }
        negative = true;
    }
    let mut digits = 0usize;
    let mut zero_first = false;
    let mut magnitude = Some(0u64);
    for b in bytes {
        // JSON: no digit after a leading zero.
        if !b.is_ascii_digit() || zero_first {
            return None;
        }
        zero_first = digits == 0 && b == b'0';
        digits += 1;
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(u64::from(b - b'0')));
    }
    (1..=MAX_INT_DIGITS)
        .contains(&digits)
        .then_some(LaxInt { negative, magnitude })
}

/// pydantic's cleaning of an integer string that is not a JSON integer as it is (see
/// [`python_int`]): whether it is negative, what is left to read, and whether to read it
/// without its underscores. `None`: pydantic reads no integer.
fn clean_int(text: &str) -> Option<(bool, &str, bool)> {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix('+') {
        if rest.starts_with('-') {
            return None;
        }
        s = rest;
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        if rest.starts_with(['-', '+']) {
            return None;
        }
        negative = true;
        s = rest;
    }
    s = skip_leading_zeros(s)?;
    if let Some((whole, fraction)) = s.split_once('.')
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b == b'0')
    {
        s = whole;
    }
    let underscores = s.contains('_') && !s.starts_with('_') && !s.ends_with('_') && !s.contains("__");
    Some((negative, s, underscores))
}

/// `s` from its first character that is not a leading zero (or an underscore among them):
/// from the last zero before a `.`; the last character when all are zeros and underscores.
/// `None` when `s` starts with neither a digit nor `-`, or meets another character among its
/// leading zeros.
fn skip_leading_zeros(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    match bytes.first()? {
        b'1'..=b'9' | b'-' => return Some(s),
        b'0' => {}
        _ => return None,
    }
    for (i, b) in bytes.iter().enumerate().skip(1) {
        match b {
            b'0' | b'_' => {}
            b'1'..=b'9' | b'-' => return Some(&s[i..]),
            // The byte before is a `0` or a `_`: one byte wide.
            b'.' => return Some(&s[i - 1..]),
            _ => return None,
        }
    }
    Some(&s[s.len() - 1..])
}
