//! The rows of a warm file: the fields read from a JSON object or a CSV record ([`RawRow`]),
//! and the rules that make them a [`WarmRow`] or the reason to skip them (see the module
//! documentation of [`super`]).

use pw_cache_model::Secret;
use pw_cache_model::limits;
use pw_cache_model::proxy_url::{CREDENTIAL_MASK, ProxyUrl};
use pw_cache_tiers::jsonl::hex_decode;
use serde_json::{Map, Value};

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
const MASK: &str = CREDENTIAL_MASK;

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
        PROXY_URL => limits::MAX_PROXY_URL_WITH_CREDENTIALS_BYTES,
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
    let url = ProxyUrl::parse(&proxy_url).map_err(|e| e.to_string())?;
    let username = credential(username, USERNAME_ENCRYPTED, username_encrypted)?;
    let password = credential(password, PASSWORD_ENCRYPTED, password_encrypted)?;
    let (username, password) = if url.username.is_some() || url.password.is_some() {
        if username.is_some() || password.is_some() {
            return Err(format!(
                "credentials given both in `{PROXY_URL}` and in `{USERNAME}`/`{PASSWORD}`"
            ));
        }
        (
            url.username.map(WarmCredential::Plain),
            url.password.map(WarmCredential::Plain),
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
