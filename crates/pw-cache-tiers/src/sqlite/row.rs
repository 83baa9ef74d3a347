//! The row codec: the SQLite side of the entry codec (`crate::entry_codec`): the values a put
//! binds ([`EntryRow`], a [`FieldSink`]) and a row's values read back ([`Columns`], a
//! [`FieldSource`]), each value read as proxywhirl reads it (see [`crate::sqlite`], "Rows").

use pw_cache_crypto::{KeyRing, Token};
use pw_cache_model::timestamp::{self, from_unix_seconds, to_unix_seconds};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, Row, ToSql};

use super::lax_int::{LaxInt, int_of_real, python_int};
use super::statements::Layout;
use crate::entry_codec::{Field, FieldSink, FieldSource, StoredEntry, decode_entry, encode_entry};
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
    /// By [`Field::index`]: the 13 common columns, then the 8 health columns (not bound for L2).
    values: [ToSqlOutput<'a>; 21],
    /// `created_at` (a new row) and `updated_at` (L3 only).
    now: f64,
}

impl<'a> EntryRow<'a> {
    /// Checks and converts `entry` for `layout` ([`encode_entry`]); encrypts its credentials
    /// with the ring's current key.
    pub(crate) fn new(entry: &'a CacheEntry, ring: &KeyRing, layout: Layout) -> Result<Self, TierError> {
        let mut row = Self {
            entry,
            values: std::array::from_fn(|_| ToSqlOutput::Owned(Value::Null)),
            now: 0.0,
        };
        encode_entry(entry, ring, &mut row)?;
        if layout == Layout::L3 {
            row.now = to_unix_seconds(timestamp::now_utc());
        }
        Ok(row)
    }

    /// Runs the layout's upsert with this row.
    pub(super) fn upsert(&self, conn: &Connection, layout: Layout) -> rusqlite::Result<usize> {
        let mut params: [&dyn ToSql; 22] = [&self.now; 22];
        for (param, value) in params.iter_mut().zip(&self.values) {
            *param = value;
        }
        let params = match layout {
            Layout::L2 => &params[..13],
            Layout::L3 => &params[..],
        };
        conn.prepare_cached(layout.statements().upsert)?.execute(params)
    }

    fn set(&mut self, field: Field, value: ToSqlOutput<'a>) {
        self.values[field.index()] = value;
    }
}

/// What a put binds: REAL Unix seconds, INTEGER counts and flag, TEXT, BLOB tokens, NULL for
/// none (see [`crate::sqlite`], "Rows").
impl<'a> FieldSink<'a> for EntryRow<'a> {
    const INTEGER: &'static str = "a SQLite INTEGER";

    fn text(&mut self, field: Field, value: &'a str) {
        self.set(field, ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())));
    }

    fn optional_text(&mut self, field: Field, value: Option<&'a str>) {
        match value {
            Some(text) => self.text(field, text),
            None => self.set(field, ToSqlOutput::Owned(Value::Null)),
        }
    }

    fn time(&mut self, field: Field, value: OffsetDateTime) {
        self.set(field, ToSqlOutput::Owned(Value::Real(to_unix_seconds(value))));
    }

    fn optional_time(&mut self, field: Field, value: Option<OffsetDateTime>) {
        match value {
            Some(time) => self.time(field, time),
            None => self.set(field, ToSqlOutput::Owned(Value::Null)),
        }
    }

    fn count(&mut self, field: Field, value: i64) {
        self.set(field, ToSqlOutput::Owned(Value::Integer(value)));
    }

    fn flag(&mut self, field: Field, value: bool) {
        self.count(field, i64::from(value));
    }

    fn status(&mut self, field: Field, value: HealthStatus) {
        self.text(field, value.as_str());
    }

    fn token(&mut self, field: Field, token: Option<Token>) {
        let value = token.map_or(Value::Null, |token| Value::Blob(token.into_bytes()));
        self.set(field, ToSqlOutput::Owned(value));
    }
}

/// Reads the values of a row of the layout's `get` statement, naming the column of any value
/// that does not fit. `key` names the entry in errors.
pub(crate) fn read_row(row: &Row<'_>, layout: Layout, key: &str) -> Result<StoredEntry, TierError> {
    decode_entry(&Columns::new(row, key), layout == Layout::L3)
}

/// Typed reads of one row's values, each as proxywhirl 0.3.3 reads it (see [`crate::sqlite`],
/// "Rows"); a value it cannot read is [`TierError::Corrupt`], naming the column. The usual
/// storage class of each column is read first; the other readable ones only after.
pub(crate) struct Columns<'r, 'k> {
    /// The row.
    row: &'r Row<'r>,
    /// The entry's key, for errors.
    key: &'k str,
    /// The [`Field`] the row's first column holds, when it holds fields of an entry in their
    /// order ([`Field::index`]).
    first: Field,
}

/// What a count column does with a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BelowZero {
    /// Unreadable (the field has `ge=0` in proxywhirl's model: proxywhirl cannot read it either).
    Corrupt,
    /// Read as 0, with a warning (`access_count`: no lower bound in proxywhirl's model).
    ReadAsZero,
}

impl<'r, 'k> Columns<'r, 'k> {
    /// The columns of `row`, the first holding `key` (an entry's fields in their order, as the
    /// `get` statement selects them), or something else (read by index).
    pub(crate) fn new(row: &'r Row<'r>, key: &'k str) -> Self {
        Self::starting_at(row, key, Field::Key)
    }

    /// The columns of `row`, the first holding `first` and the next the fields after it.
    pub(crate) fn starting_at(row: &'r Row<'r>, key: &'k str, first: Field) -> Self {
        Self { row, key, first }
    }

    /// The index of `field`'s column.
    fn at(&self, field: Field) -> usize {
        field.index() - self.first.index()
    }
}

/// An entry's fields by name: each read as the `*_at` method of the same name reads its column.
impl FieldSource for Columns<'_, '_> {
    fn text(&self, field: Field) -> Result<String, TierError> {
        self.text_at(self.at(field), field.name())
    }

    fn optional_text(&self, field: Field) -> Result<Option<String>, TierError> {
        self.optional_text_at(self.at(field), field.name())
    }

    fn time(&self, field: Field) -> Result<OffsetDateTime, TierError> {
        self.time_at(self.at(field), field.name())
    }

    fn optional_time(&self, field: Field) -> Result<Option<OffsetDateTime>, TierError> {
        self.optional_time_at(self.at(field), field.name())
    }

    fn count(&self, field: Field) -> Result<u64, TierError> {
        self.count_at(self.at(field), field.name())
    }

    fn use_count(&self, field: Field) -> Result<u64, TierError> {
        self.use_count_at(self.at(field), field.name())
    }

    fn flag(&self, field: Field) -> Result<bool, TierError> {
        self.flag_at(self.at(field), field.name())
    }

    fn status(&self, field: Field) -> Result<HealthStatus, TierError> {
        self.status_at(self.at(field), field.name())
    }

    fn token(&self, field: Field) -> Result<Option<Vec<u8>>, TierError> {
        self.token_at(self.at(field), field.name())
    }
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
    pub(crate) fn optional_text_at(&self, i: usize, column: &str) -> Result<Option<String>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            other => self.utf8(other, column).map(|s| Some(s.to_owned())),
        }
    }

    /// TEXT (UTF-8) or a BLOB of UTF-8.
    pub(crate) fn text_at(&self, i: usize, column: &str) -> Result<String, TierError> {
        self.optional_text_at(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected TEXT, found NULL"))
    }

    /// A REAL (or INTEGER) number of seconds, or NULL.
    pub(crate) fn optional_real_at(&self, i: usize, column: &str) -> Result<Option<f64>, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(x) => Ok(Some(x)),
            ValueRef::Integer(n) => Ok(Some(n as f64)),
            other => Err(self.corrupt(column, format_args!("expected a REAL, found {}", Self::found(other)))),
        }
    }

    /// A REAL Unix time, read as Python reads it, or NULL.
    pub(crate) fn optional_time_at(&self, i: usize, column: &str) -> Result<Option<OffsetDateTime>, TierError> {
        self.optional_real_at(i, column)?
            .map(|x| from_unix_seconds(x).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A REAL Unix time.
    pub(crate) fn time_at(&self, i: usize, column: &str) -> Result<OffsetDateTime, TierError> {
        self.optional_time_at(i, column)?
            .ok_or_else(|| self.corrupt(column, "expected a REAL, found NULL"))
    }

    /// A count whose field has `ge=0` in proxywhirl's model: a non-negative INTEGER, or any
    /// other value pydantic reads as an integer ([`Columns::lax_count`]); a negative one is
    /// corrupt.
    pub(crate) fn count_at(&self, i: usize, column: &str) -> Result<u64, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
            other => self.lax_count(other, column, BelowZero::Corrupt),
        }
    }

    /// `access_count`, a count without a lower bound in proxywhirl's model: as
    /// [`Columns::count_at`], but a negative value is read as 0 (with a warning).
    fn use_count_at(&self, i: usize, column: &str) -> Result<u64, TierError> {
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
    fn flag_at(&self, i: usize, column: &str) -> Result<bool, TierError> {
        match self.value(i, column)? {
            ValueRef::Integer(n) => Ok(n != 0),
            ValueRef::Null => Ok(false),
            ValueRef::Real(x) => Ok(x != 0.0),
            ValueRef::Blob(bytes) => Ok(!bytes.is_empty()),
            text @ ValueRef::Text(_) => self.utf8(text, column).map(|s| !s.is_empty()),
        }
    }

    /// A health status: exactly one of its five words, as TEXT or as a BLOB.
    pub(crate) fn status_at(&self, i: usize, column: &str) -> Result<HealthStatus, TierError> {
        match self.value(i, column)? {
            ValueRef::Null => Err(self.corrupt(column, "expected TEXT, found NULL")),
            other => self.utf8(other, column)?.parse().map_err(|e| self.corrupt(column, e)),
        }
    }

    /// A credential token: the bytes of a BLOB (or TEXT). As proxywhirl decrypts only a value
    /// Python takes as true, NULL, an empty value, 0 and 0.0 are no credential.
    fn token_at(&self, i: usize, column: &str) -> Result<Option<Vec<u8>>, TierError> {
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
