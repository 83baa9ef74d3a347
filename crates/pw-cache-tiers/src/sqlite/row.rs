//! The row codec: an entry as the values a put binds ([`EntryRow`]), and a row read back into
//! an entry ([`read_row`], [`Columns`]), each value read as proxywhirl reads it (see
//! [`crate::sqlite`], "Rows").

use pw_cache_crypto::KeyRing;
use pw_cache_model::timestamp::{self, from_unix_seconds, to_unix_seconds};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime, Secret};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, ToSql};

use super::lax_int::{LaxInt, int_of_real, python_int};
use super::statements::Layout;
use crate::error::TierError;

/// A use count as a SQLite integer (a count beyond `i64::MAX` is stored as `i64::MAX`).
pub(super) fn count_param(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Layout {
    /// `entry` as this table gives it back: fields it has no column for at their defaults,
    /// timestamps through their REAL encoding (which keeps the microsecond within years
    /// 1697..2242).
    pub(crate) fn as_stored(self, entry: &CacheEntry) -> CacheEntry {
        let through_real = |t: OffsetDateTime| from_unix_seconds(to_unix_seconds(t)).unwrap_or(t);
        let mut e = entry.clone();
        e.fetch_time = through_real(e.fetch_time);
        e.last_accessed = through_real(e.last_accessed);
        e.expires_at = through_real(e.expires_at);
        match self {
            Layout::L2 => {
                e.last_health_check = None;
                e.consecutive_health_failures = 0;
                e.consecutive_health_successes = 0;
                e.recovery_attempt = 0;
                e.next_check_time = None;
                e.last_health_error = None;
                e.total_health_checks = 0;
                e.total_health_check_failures = 0;
            }
            Layout::L3 => {
                e.last_health_check = e.last_health_check.map(through_real);
                e.next_check_time = e.next_check_time.map(through_real);
            }
        }
        e
    }
}

/// An entry as its row's values, credentials encrypted: what a put binds.
pub(crate) struct EntryRow<'a> {
    pub(super) entry: &'a CacheEntry,
    username: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    fetch_time: f64,
    last_accessed: f64,
    access_count: i64,
    ttl_seconds: i64,
    expires_at: f64,
    failure_count: i64,
    evicted_from_l1: i64,
    last_health_check: Option<f64>,
    consecutive_health_failures: i64,
    consecutive_health_successes: i64,
    recovery_attempt: i64,
    next_check_time: Option<f64>,
    total_health_checks: i64,
    total_health_check_failures: i64,
    /// `created_at` (a new row) and `updated_at` (L3 only).
    now: f64,
}

impl<'a> EntryRow<'a> {
    /// Checks and converts `entry` for `layout`; encrypts its credentials with the ring's
    /// current key.
    pub(crate) fn new(entry: &'a CacheEntry, ring: &KeyRing, layout: Layout) -> Result<Self, TierError> {
        if entry.key.is_empty() {
            return Err(TierError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        let int = |field: &str, value: u64| {
            i64::try_from(value).map_err(|_| TierError::InvalidEntry {
                key: entry.key.clone(),
                reason: format!("{field} {value} does not fit a SQLite INTEGER"),
            })
        };
        let seal = |secret: &Option<Secret>| secret.as_ref().map(|s| ring.encrypt(s).into_bytes());
        Ok(Self {
            username: seal(&entry.username),
            password: seal(&entry.password),
            fetch_time: to_unix_seconds(entry.fetch_time),
            last_accessed: to_unix_seconds(entry.last_accessed),
            access_count: int("access_count", entry.access_count)?,
            ttl_seconds: int("ttl_seconds", entry.ttl_seconds)?,
            expires_at: to_unix_seconds(entry.expires_at),
            failure_count: int("failure_count", entry.failure_count)?,
            evicted_from_l1: i64::from(entry.evicted_from_l1),
            last_health_check: entry.last_health_check.map(to_unix_seconds),
            consecutive_health_failures: int("consecutive_health_failures", entry.consecutive_health_failures)?,
            consecutive_health_successes: int("consecutive_health_successes", entry.consecutive_health_successes)?,
            recovery_attempt: int("recovery_attempt", entry.recovery_attempt)?,
            next_check_time: entry.next_check_time.map(to_unix_seconds),
            total_health_checks: int("total_health_checks", entry.total_health_checks)?,
            total_health_check_failures: int("total_health_check_failures", entry.total_health_check_failures)?,
            now: match layout {
                Layout::L2 => 0.0,
                Layout::L3 => to_unix_seconds(timestamp::now_utc()),
            },
            entry,
        })
    }

    /// Runs the layout's upsert with this row.
    pub(super) fn upsert(&self, conn: &Connection, layout: Layout) -> rusqlite::Result<usize> {
        let e = self.entry;
        let params: [&dyn ToSql; 22] = [
            &e.key,
            &e.proxy_url,
            &self.username,
            &self.password,
            &e.source,
            &self.fetch_time,
            &self.last_accessed,
            &self.access_count,
            &self.ttl_seconds,
            &self.expires_at,
            &e.health_status.as_str(),
            &self.failure_count,
            &self.evicted_from_l1,
            &self.last_health_check,
            &self.consecutive_health_failures,
            &self.consecutive_health_successes,
            &self.recovery_attempt,
            &self.next_check_time,
            &e.last_health_error,
            &self.total_health_checks,
            &self.total_health_check_failures,
            &self.now,
        ];
        let params = match layout {
            Layout::L2 => &params[..13],
            Layout::L3 => &params[..],
        };
        conn.prepare_cached(layout.statements().upsert)?.execute(params)
    }
}

/// A row as read: every field but the credentials, which are still tokens.
pub(crate) struct StoredEntry {
    entry: CacheEntry,
    pub(super) username: Option<Vec<u8>>,
    pub(super) password: Option<Vec<u8>>,
}

impl StoredEntry {
    /// The entry, its credentials decrypted with any key of `ring`.
    pub(crate) fn open(self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        let StoredEntry {
            mut entry,
            username,
            password,
        } = self;
        let open = |token: Option<Vec<u8>>| {
            token
                .map(|bytes| ring.decrypt_bytes(&bytes))
                .transpose()
                .map_err(|source| TierError::Crypto {
                    key: entry.key.clone(),
                    source,
                })
        };
        let username = open(username)?;
        let password = open(password)?;
        entry.username = username;
        entry.password = password;
        Ok(entry)
    }
}

/// Reads the values of a row of the layout's `get` statement, naming the column of any value
/// that does not fit. `key` names the entry in errors.
pub(crate) fn read_row(row: &Row<'_>, layout: Layout, key: &str) -> Result<StoredEntry, TierError> {
    let col = Columns { row, key };
    let mut entry = CacheEntry {
        key: col.text(0, "key")?,
        proxy_url: col.text(1, "proxy_url")?,
        username: None,
        password: None,
        source: col.text(4, "source")?,
        fetch_time: col.time(5, "fetch_time")?,
        last_accessed: col.time(6, "last_accessed")?,
        access_count: col.use_count(7, "access_count")?,
        ttl_seconds: col.count(8, "ttl_seconds")?,
        expires_at: col.time(9, "expires_at")?,
        health_status: col.status(10, "health_status")?,
        failure_count: col.count(11, "failure_count")?,
        evicted_from_l1: col.flag(12, "evicted_from_l1")?,
        last_health_check: None,
        consecutive_health_failures: 0,
        consecutive_health_successes: 0,
        recovery_attempt: 0,
        next_check_time: None,
        last_health_error: None,
        total_health_checks: 0,
        total_health_check_failures: 0,
    };
    if layout == Layout::L3 {
        entry.last_health_check = col.optional_time(13, "last_health_check")?;
        entry.consecutive_health_failures = col.count(14, "consecutive_health_failures")?;
        entry.consecutive_health_successes = col.count(15, "consecutive_health_successes")?;
        entry.recovery_attempt = col.count(16, "recovery_attempt")?;
        entry.next_check_time = col.optional_time(17, "next_check_time")?;
        entry.last_health_error = col.optional_text(18, "last_health_error")?;
        entry.total_health_checks = col.count(19, "total_health_checks")?;
        entry.total_health_check_failures = col.count(20, "total_health_check_failures")?;
    }
    Ok(StoredEntry {
        username: col.token(2, "username_encrypted")?,
        password: col.token(3, "password_encrypted")?,
        entry,
    })
}

/// Typed reads of one row's values, each as proxywhirl 0.3.3 reads it (see [`crate::sqlite`],
/// "Rows"); a value it cannot read is [`TierError::Corrupt`], naming the column. The usual
/// storage class of each column is read first; the other readable ones only after.
pub(crate) struct Columns<'r, 'k> {
    /// The row.
    pub(crate) row: &'r Row<'r>,
    /// The entry's key, for errors.
    pub(crate) key: &'k str,
}

/// What a count column does with a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BelowZero {
    /// Unreadable (the field has `ge=0` in proxywhirl's model: proxywhirl cannot read it either).
    Corrupt,
    /// Read as 0, with a warning (`access_count`: no lower bound in proxywhirl's model).
    ReadAsZero,
}

impl Columns<'_, '_> {
    fn corrupt(&self, column: &str, what: impl std::fmt::Display) -> TierError {
        TierError::Corrupt {
            key: self.key.to_owned(),
            reason: format!("column {column}: {what}"),
        }
    }

    fn value(&self, i: usize, column: &str) -> Result<ValueRef<'_>, TierError> {
        self.row.get_ref(i).map_err(|e| self.corrupt(column, e))
    }

    fn found(value: ValueRef<'_>) -> &'static str {
        match value {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an INTEGER",
            ValueRef::Real(_) => "a REAL",
            ValueRef::Text(_) => "TEXT",
            ValueRef::Blob(_) => "a BLOB",
        }
    }

    /// The text of a TEXT or BLOB value: pydantic takes UTF-8 bytes for a `str`; Python's
    /// sqlite3 cannot fetch TEXT that is not UTF-8.
    fn utf8<'v>(&self, value: ValueRef<'v>, column: &str) -> Result<&'v str, TierError> {
        match value {
            ValueRef::Text(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| self.corrupt(column, "TEXT that is not UTF-8"))
            }
            ValueRef::Blob(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| self.corrupt(column, "a BLOB that is not UTF-8"))
            }
            other => Err(self.corrupt(column, format_args!("expected TEXT, found {}", Self::found(other)))),
        }
    }

    /// TEXT (UTF-8) or a BLOB of UTF-8, or NULL.
    pub(crate) fn optional_text(&self, i: usize, column: &str) -> Result<Option<String>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            other => self.utf8(other, column).map(|s| Some(s.to_owned())),
        }
    }

    /// TEXT (UTF-8) or a BLOB of UTF-8.
    pub(crate) fn text(&self, i: usize, column: &str) -> Result<String, TierError> {
        self.optional_text(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected TEXT, found NULL"))
    }

    /// A REAL (or INTEGER) number of seconds, or NULL.
    pub(crate) fn optional_real(&self, i: usize, column: &str) -> Result<Option<f64>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(x) => Ok(Some(x)),
            ValueRef::Integer(n) => Ok(Some(n as f64)),
            other => Err(self.corrupt(column, format_args!("expected a REAL, found {}", Self::found(other)))),
        }
    }

    /// A REAL Unix time, read as Python reads it, or NULL.
    pub(crate) fn optional_time(&self, i: usize, column: &str) -> Result<Option<OffsetDateTime>, TierError> {
        self.optional_real(i, column)?
            .map(|x| from_unix_seconds(x).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A REAL Unix time.
    pub(crate) fn time(&self, i: usize, column: &str) -> Result<OffsetDateTime, TierError> {
        self.optional_time(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected a REAL, found NULL"))
    }

    /// A count whose field has `ge=0` in proxywhirl's model: a non-negative INTEGER, or any
    /// other value pydantic reads as an integer ([`Columns::lax_count`]); a negative one is
    /// corrupt.
    pub(crate) fn count(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
            other => self.lax_count(other, column, BelowZero::Corrupt),
        }
    }

    /// `access_count`, a count without a lower bound in proxywhirl's model: as
    /// [`Columns::count`], but a negative value is read as 0 (with a warning).
    fn use_count(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
            other => self.lax_count(other, column, BelowZero::ReadAsZero),
        }
    }

    /// A count stored as anything but a non-negative INTEGER, read as pydantic 2 reads an `int`
    /// in lax mode: a negative INTEGER; a REAL without a fraction strictly between -2^63 and
    /// 2^63; the text of an integer (TEXT, or a BLOB of UTF-8: [`python_int`]). Beyond `u64`
    /// it is read as `u64::MAX`, below zero as `below_zero` says; either with a warning.
    #[cold]
    fn lax_count(&self, value: ValueRef<'_>, column: &str, below_zero: BelowZero) -> Result<u64, TierError> {
        let int = match value {
            ValueRef::Null => return Err(self.corrupt(column, "expected an INTEGER, found NULL")),
            ValueRef::Integer(n) => LaxInt {
                negative: n < 0,
                magnitude: Some(n.unsigned_abs()),
            },
            ValueRef::Real(x) => int_of_real(x).map_err(|why| self.corrupt(column, format_args!("REAL {x} {why}")))?,
            ValueRef::Text(_) | ValueRef::Blob(_) => {
                let text = self.utf8(value, column)?;
                python_int(text).ok_or_else(|| {
                    self.corrupt(
                        column,
                        format_args!("{} {:?} is not an integer", Self::found(value), Shown(text)),
                    )
                })?
            }
        };
        match int {
            LaxInt { magnitude: Some(0), .. } => Ok(0),
            LaxInt {
                negative: false,
                magnitude: Some(n),
            } => Ok(n),
            LaxInt {
                negative: false,
                magnitude: None,
            } => {
                tracing::warn!(
                    key = self.key,
                    column,
                    value = %ShownValue(value),
                    "count above the largest this model holds: read as {}",
                    u64::MAX
                );
                Ok(u64::MAX)
            }
            LaxInt { negative: true, .. } => match below_zero {
                BelowZero::Corrupt => Err(self.corrupt(
                    column,
                    format_args!("{} is negative (proxywhirl's model requires >= 0)", ShownValue(value)),
                )),
                BelowZero::ReadAsZero => {
                    tracing::warn!(
                        key = self.key,
                        column,
                        value = %ShownValue(value),
                        "negative count (proxywhirl allows it, this model does not): read as 0"
                    );
                    Ok(0)
                }
            },
        }
    }

    /// A flag, as Python's `bool()` reads the value: NULL, 0, 0.0, empty TEXT and an empty
    /// BLOB are false, every other value true (`'0'` and `'no'` too). L3's NULL too is false
    /// (proxywhirl's L3 cannot read it; its L2 reads it false).
    fn flag(&self, i: usize, column: &str) -> Result<bool, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) => Ok(n != 0),
            ValueRef::Null => Ok(false),
            ValueRef::Real(x) => Ok(x != 0.0),
            ValueRef::Blob(bytes) => Ok(!bytes.is_empty()),
            text @ ValueRef::Text(_) => self.utf8(text, column).map(|s| !s.is_empty()),
        }
    }

    /// A health status: exactly one of its five words, as TEXT or as a BLOB.
    pub(crate) fn status(&self, i: usize, column: &str) -> Result<HealthStatus, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Err(self.corrupt(column, "expected TEXT, found NULL")),
            other => self.utf8(other, column)?.parse().map_err(|e| self.corrupt(column, e)),
        }
    }

    /// A credential token: the bytes of a BLOB (or TEXT). As proxywhirl decrypts only a value
    /// Python takes as true, NULL, an empty value, 0 and 0.0 are no credential.
    fn token(&self, i: usize, column: &str) -> Result<Option<Vec<u8>>, TierError> {
        match self.value(i, column)? {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok((!bytes.is_empty()).then(|| bytes.to_vec())),
            // A float pattern compares with `==`: -0.0 too.
            ValueRef::Null | ValueRef::Integer(0) | ValueRef::Real(0.0) => Ok(None),
            other => Err(self.corrupt(column, format_args!("expected a BLOB, found {}", Self::found(other)))),
        }
    }
}

/// At most this many characters of a value are shown in errors and warnings.
const SHOWN_CHARS: usize = 40;

/// A text in errors, cut at [`SHOWN_CHARS`] characters.
struct Shown<'a>(&'a str);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(SHOWN_CHARS) {
            Some((end, _)) => write!(f, "{:?}...", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// A count's stored value in errors and warnings (never a credential: counts only).
struct ShownValue<'a>(ValueRef<'a>);

impl std::fmt::Display for ShownValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(n) => write!(f, "INTEGER {n}"),
            ValueRef::Real(x) => write!(f, "REAL {x}"),
            ValueRef::Text(bytes) => write!(f, "TEXT {:?}", Shown(&String::from_utf8_lossy(bytes))),
            ValueRef::Blob(bytes) => write!(f, "BLOB {:?}", Shown(&String::from_utf8_lossy(bytes))),
        }
    }
}
