//! Hex as a shard line holds a token's bytes: written lowercase ([`hex_encode`]), read in
//! either case ([`hex_decode`]), and a stored token read as Python's `bytes.fromhex` reads it
//! ([`stored_hex_decode`]).

/// Lowercase hex, as Python's `bytes.hex()`: how a shard line (and an encrypted export) holds a
/// token's bytes.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The value of a hex digit of either case.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Hex of either case, as Python's `bytes.fromhex` (without its whitespace tolerance: see
/// `stored_hex_decode`); `None` for an odd length or a non-hex digit.
pub fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

/// The hex of a stored credential token, read as proxywhirl reads it with Python 3.11's
/// `bytes.fromhex`: either case, and ASCII whitespace (space, `\t`, `\n`, `\x0b`, `\x0c`,
/// `\r`) before any byte and at the end, never between the two digits of a byte (`"67 41\n"`
/// reads, `"6 741"` does not); any other byte is refused. The strict [`hex_decode`] first, so a
/// token as we write it pays nothing more.
pub(crate) fn stored_hex_decode(hex: &str) -> Option<Vec<u8>> {
    if let Some(bytes) = hex_decode(hex) {
        return Some(bytes);
    }
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut digits = hex.bytes();
    let mut out = Vec::with_capacity(hex.len() / 2);
    loop {
        let high = match digits.find(|&b| !is_space(b)) {
            None => return Some(out),
            Some(b) => hex_digit(b)?,
        };
        let low = hex_digit(digits.next()?)?;
        out.push(high << 4 | low);
    }
}
