//! The rows of a warm file: the fields read from a JSON object or a CSV record ([`RawRow`]),
//! and the rules that make them a [`WarmRow`] or the reason to skip them (see the module
//! documentation of [`super`]).

use pw_cache_model::Secret;
use pw_cache_model::limits;
use pw_cache_tiers::jsonl::hex_decode;
use serde_json::{Map, Value};
use url::Url;

use super::{IssueKind, RowLocation, WarmCredential, WarmIssue, WarmItem, WarmRow};

/// The field holding the proxy URL (required).
pub(super) const PROXY_URL: &str = "proxy_url";
/// The plaintext username field.
pub(super) const USERNAME: &str = "username";
/// The plaintext password field.
pub(super) const PASSWORD: &str = "password";
/// The hex of a Fernet token of the username.
pub(super) const USERNAME_ENCRYPTED: &str = "username_encrypted";
/// The hex of a Fernet token of the password.
pub(super) const PASSWORD_ENCRYPTED: &str = "password_encrypted";
/// The source field.
pub(super) const SOURCE: &str = "source";
/// The cache key field.
pub(super) const KEY: &str = "key";

/// What proxywhirl's export writes in place of a credential: never a credential itself.
const MASK: &str = "***";

/// The URL schemes a proxy URL may have.
const PROXY_SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// A row's fields made a row, or a skipped row.
pub(super) fn item(location: RowLocation, raw: RawRow) -> WarmItem {
    match build_row(location, raw) {
        Ok(row) => WarmItem::Row(row),
        Err(reason) => issue(location, IssueKind::Skipped, reason),
    }
}

/// An issue.
pub(super) fn issue(location: RowLocation, kind: IssueKind, reason: String) -> WarmItem {
    WarmItem::Issue(WarmIssue { location, kind, reason })
}

/// The longest text each field of a warm row may hold, from the model's limits
/// ([`pw_cache_model::limits`]): a longer one makes the row fail before anything is done with
/// the value (no URL parsing, no decryption). `proxy_url` may carry percent-encoded credentials
/// (3 bytes per byte at most), an encrypted credential is the hex of a token (2 characters per
/// byte, with room for whitespace).
fn field_limit(name: &str) -> usize {
    match name {
        PROXY_URL => limits::MAX_PROXY_URL_BYTES + 2 * 3 * limits::MAX_CREDENTIAL_BYTES + 2,
        USERNAME | PASSWORD => limits::MAX_CREDENTIAL_BYTES,
        USERNAME_ENCRYPTED | PASSWORD_ENCRYPTED => 4 * limits::MAX_CREDENTIAL_TOKEN_BYTES,
        SOURCE => limits::MAX_SOURCE_BYTES,
        _ => limits::MAX_KEY_BYTES,
    }
}

/// One field of a row as read, before interpretation.
pub(super) enum Field {
    /// Missing, `null`, or empty after trimming.
    Absent,
    /// A trimmed, non-empty text (a JSON number is its JSON text).
    Text(String),
    /// A JSON type that is refused: `a boolean`, `an object`, `an array`.
    WrongType(&'static str),
}

impl Field {
    /// A text field: trimmed, empty is absent.
    pub(super) fn text(value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() {
            Self::Absent
        } else {
            Self::Text(value.to_owned())
        }
    }

    /// A JSON field.
    fn json(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Absent,
            Some(Value::String(s)) => Self::text(s),
            Some(Value::Number(n)) => Self::text(&n.to_string()),
            Some(Value::Bool(_)) => Self::WrongType("a boolean"),
            Some(Value::Object(_)) => Self::WrongType("an object"),
            Some(Value::Array(_)) => Self::WrongType("an array"),
        }
    }

    /// The text, if any.
    fn into_text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            Self::Absent | Self::WrongType(_) => None,
        }
    }
}

/// The fields of one row that this module reads.
pub(super) struct RawRow {
    /// `proxy_url`.
    pub(super) proxy_url: Field,
    /// `username`.
    pub(super) username: Field,
    /// `password`.
    pub(super) password: Field,
    /// `username_encrypted`.
    pub(super) username_encrypted: Field,
    /// `password_encrypted`.
    pub(super) password_encrypted: Field,
    /// `source`.
    pub(super) source: Field,
    /// `key`.
    pub(super) key: Field,
}

impl RawRow {
    /// The names of the fields read, in the order they are checked.
    pub(super) const NAMES: [&'static str; 7] = [
        PROXY_URL,
        USERNAME,
        PASSWORD,
        USERNAME_ENCRYPTED,
        PASSWORD_ENCRYPTED,
        SOURCE,
        KEY,
    ];

    /// The fields of a JSON object.
    pub(super) fn from_json(map: &Map<String, Value>) -> Self {
        let get = |name: &str| Field::json(map.get(name));
        Self {
            proxy_url: get(PROXY_URL),
            username: get(USERNAME),
            password: get(PASSWORD),
            username_encrypted: get(USERNAME_ENCRYPTED),
            password_encrypted: get(PASSWORD_ENCRYPTED),
            source: get(SOURCE),
            key: get(KEY),
        }
    }

    /// The fields with their names, in [`RawRow::NAMES`] order.
    fn fields(&self) -> [(&'static str, &Field); 7] {
        [
            (PROXY_URL, &self.proxy_url),
            (USERNAME, &self.username),
            (PASSWORD, &self.password),
            (USERNAME_ENCRYPTED, &self.username_encrypted),
            (PASSWORD_ENCRYPTED, &self.password_encrypted),
            (SOURCE, &self.source),
            (KEY, &self.key),
        ]
    }
}

/// Applies the row rules (see the module documentation of [`super`]): a row, or the reason to skip it.
fn build_row(location: RowLocation, raw: RawRow) -> Result<WarmRow, String> {
    for (name, field) in raw.fields() {
        match field {
            Field::WrongType(found) => {
                return Err(format!("field `{name}` is {found}; expected a string or a number"));
            }
            Field::Text(text) if text.len() > field_limit(name) => {
                // The length only: the value may be a credential.
                return Err(format!(
                    "field `{name}` is {} bytes long, more than its limit of {} bytes",
                    text.len(),
                    field_limit(name)
                ));
            }
            Field::Text(_) | Field::Absent => {}
        }
    }
    let RawRow {
        proxy_url,
        username,
        password,
        username_encrypted,
        password_encrypted,
        source,
        key,
    } = raw;
    let Some(proxy_url) = proxy_url.into_text() else {
        return Err(format!("missing `{PROXY_URL}`"));
    };
    let url = ProxyUrl::parse(&proxy_url)?;
    let username = credential(username, USERNAME_ENCRYPTED, username_encrypted)?;
    let password = credential(password, PASSWORD_ENCRYPTED, password_encrypted)?;
    let (username, password) = if url.username.is_some() || url.password.is_some() {
        if username.is_some() || password.is_some() {
            return Err(format!(
                "credentials given both in `{PROXY_URL}` and in `{USERNAME}`/`{PASSWORD}`"
            ));
        }
        (
            url.username.map(|u| WarmCredential::Plain(Secret::new(u))),
            url.password.map(|p| WarmCredential::Plain(Secret::new(p))),
        )
    } else {
        (username, password)
    };
    Ok(WarmRow {
        location,
        proxy_url: url.stored,
        username,
        password,
        source: source.into_text(),
        key: key.into_text(),
    })
}

/// A credential from its plain and encrypted fields: the encrypted one wins; `"***"` is absent.
fn credential(plain: Field, encrypted_name: &str, encrypted: Field) -> Result<Option<WarmCredential>, String> {
    if let Some(hex) = encrypted.into_text() {
        return decode_token(encrypted_name, &hex).map(|token| Some(WarmCredential::Token(token)));
    }
    Ok(plain
        .into_text()
        .filter(|value| value != MASK)
        .map(|value| WarmCredential::Plain(Secret::new(value))))
}

/// The text of a Fernet token from the hex of its bytes.
fn decode_token(name: &str, hex: &str) -> Result<String, String> {
    let bytes = hex_decode(hex).ok_or_else(|| format!("field `{name}` is not valid hex"))?;
    let refused = || format!("field `{name}` does not decode to a Fernet token (printable ASCII text)");
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(refused());
    }
    String::from_utf8(bytes).map_err(|_| refused())
}

/// The value of one hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `%XX` percent-decoding (an invalid `%` sequence stays as written), then UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A validated proxy URL, split from its credentials.
struct ProxyUrl {
    /// The text to store: as written, without userinfo.
    stored: String,
    /// The percent-decoded username of the userinfo, if non-empty and not `"***"`.
    username: Option<String>,
    /// The percent-decoded password of the userinfo, if non-empty and not `"***"`.
    password: Option<String>,
}

impl ProxyUrl {
    /// Validates a trimmed, non-empty `proxy_url`. The reason never shows the URL (it may hold
    /// credentials).
    fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("`{PROXY_URL}` is not a valid proxy URL: {e}"))?;
        let scheme = url.scheme();
        if !PROXY_SCHEMES.contains(&scheme) {
            return Err(format!(
                "`{PROXY_URL}` scheme `{scheme}` is not a proxy scheme \
                 (expected http, https, socks4, socks4a, socks5 or socks5h)"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
            return Err(format!(
                "`{PROXY_URL}` contains whitespace, a control character or a backslash"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{PROXY_URL}` has no host"));
        }
        if url.port_or_known_default().is_none() {
            return Err(format!(
                "`{PROXY_URL}` has no port (scheme `{scheme}` has no default port)"
            ));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!("`{PROXY_URL}` has a path; expected only scheme://host:port"));
        }
        if url.query().is_some() {
            return Err(format!("`{PROXY_URL}` has a query; expected only scheme://host:port"));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "`{PROXY_URL}` has a fragment; expected only scheme://host:port"
            ));
        }

        // Remove the userinfo from the text as written: the authority runs from "://" to the
        // first '/', '?' or '#'; the userinfo ends at its last '@' (as the URL standard reads it).
        let written_scheme = text
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .zip(text.get(scheme.len()..))
            .and_then(|(s, rest)| rest.strip_prefix("://").map(|rest| (s, rest)));
        let Some((written_scheme, rest)) = written_scheme else {
            return Err(format!("`{PROXY_URL}` must start with `{scheme}://`"));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // The url crate skips extra slashes after `http:` and `https:` (`http:///host`), but an
        // RFC 3986 reader (Python's urllib.parse, so proxywhirl) sees an empty authority there.
        if authority.is_empty() {
            return Err(format!(
                "`{PROXY_URL}` has no host after `{written_scheme}://` (an extra `/`?)"
            ));
        }
        let (had_userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (true, authority.get(at + 1..).unwrap_or_default()),
            None => (false, authority),
        };
        let stored = format!("{written_scheme}://{host_port}{tail}");

        let url_has_userinfo = !url.username().is_empty() || url.password().is_some();
        let separated = if had_userinfo {
            Url::parse(&stored).is_ok_and(|check| {
                check.username().is_empty()
                    && check.password().is_none()
                    && check.host_str() == url.host_str()
                    && check.port_or_known_default() == url.port_or_known_default()
            })
        } else {
            !url_has_userinfo
        };
        if !separated {
            return Err(format!("`{PROXY_URL}` credentials could not be separated from the URL"));
        }

        let decode = |part: &str| {
            percent_decode(part)
                .ok_or_else(|| format!("`{PROXY_URL}` userinfo is not valid UTF-8 once percent-decoded"))
        };
        let keep = |value: String| Some(value).filter(|v| !v.is_empty() && v != MASK);
        let username = keep(decode(url.username())?);
        let password = match url.password() {
            Some(password) => keep(decode(password)?),
            None => None,
        };
        Ok(Self {
            stored,
            username,
            password,
        })
    }
}
