//! The schema rules both tiers share: the schema version (`PRAGMA user_version`) and the
//! transaction that upgrades it, and the declared types of the columns, refused when a tier
//! cannot use them. See [`crate::sqlite`], "Column types" and "Schema version". Each tier's
//! own tables are defined in its module ([`crate::sqlite::l2`], [`crate::sqlite::l3`]).

use std::path::Path;

use pw_cache_model::{CacheTierConfig, EvictionPolicy};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::store::sql_error;
use crate::error::TierError;

/// The schema version this crate writes in `PRAGMA user_version` (proxywhirl's files have 0).
pub const SCHEMA_VERSION: u32 = 1;

/// The columns of `table`, in order (empty when there is no such table).
pub(crate) fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |row| row.get::<_, String>(0))?;
    names.collect()
}

/// A column's SQLite type affinity, from its declared type (SQLite's rules, "Datatypes In
/// SQLite" §3.1): what SQLite converts a value into when it stores it in that column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// INTEGER (the declared type contains `INT`).
    Integer,
    /// TEXT (`CHAR`, `CLOB` or `TEXT`): numbers are stored as their text.
    Text,
    /// BLOB, also called no affinity (`BLOB`, or no declared type): nothing is converted.
    Blob,
    /// REAL (`REAL`, `FLOA` or `DOUB`): integers are stored as reals.
    Real,
    /// NUMERIC (anything else): text that reads as a number is stored as one.
    Numeric,
}

impl Affinity {
    /// The affinity of a column declared `declared`, by SQLite's rules in their order.
    pub(crate) fn of_declared(declared: &str) -> Self {
        let upper = declared.to_ascii_uppercase();
        let has = |part: &str| upper.contains(part);
        if has("INT") {
            Affinity::Integer
        } else if has("CHAR") || has("CLOB") || has("TEXT") {
            Affinity::Text
        } else if has("BLOB") || upper.trim().is_empty() {
            Affinity::Blob
        } else if has("REAL") || has("FLOA") || has("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    fn name(self) -> &'static str {
        match self {
            Affinity::Integer => "INTEGER",
            Affinity::Text => "TEXT",
            Affinity::Blob => "BLOB",
            Affinity::Real => "REAL",
            Affinity::Numeric => "NUMERIC",
        }
    }
}

/// What a column holds and how the tiers' statements use it: which declared types it may have
/// (the table in [`crate::sqlite`], "Column types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// A key looked up with `= ?` (`key`; the history's `proxy_key`).
    Key,
    /// Text read back (`proxy_url`, `source`, `last_health_error`, the history's texts).
    Text,
    /// A health status word.
    Status,
    /// A credential token (a BLOB or NULL).
    Token,
    /// A time read back, compared or ordered in SQL.
    Time,
    /// A time only written (`created_at`, `updated_at`: never read nor compared).
    WrittenTime,
    /// A REAL read back (`response_time_ms`).
    Real,
    /// A count read back (and added to, for `access_count`).
    Count,
    /// `access_count`: a count, ordered by the LFU eviction of a bounded tier.
    UseCount,
    /// A flag, read as Python's `bool()` and kept with `max(column, ?)`.
    Flag,
    /// `health_history.id`: the rowid.
    RowId,
}

impl ColumnKind {
    /// The type proxywhirl declares for such a column.
    fn proxywhirl_type(self) -> &'static str {
        match self {
            ColumnKind::Key | ColumnKind::Text | ColumnKind::Status => "TEXT",
            ColumnKind::Token => "BLOB",
            ColumnKind::Time | ColumnKind::WrittenTime | ColumnKind::Real => "REAL",
            ColumnKind::Count | ColumnKind::UseCount | ColumnKind::Flag | ColumnKind::RowId => "INTEGER",
        }
    }

    /// Why a column of this kind cannot have `affinity` (`None`: it can), when the tier
    /// orders rows by `access_count` or not.
    fn refusal(self, affinity: Affinity, orders_by_use: bool) -> Option<&'static str> {
        use Affinity as A;
        match (self, affinity) {
            (ColumnKind::Key, A::Integer | A::Real | A::Numeric) => Some(
                "a key that reads as a number ('123') would be stored as a number, which no lookup by its \
                 text finds and no reader reads back",
            ),
            (ColumnKind::Text, A::Integer | A::Real | A::Numeric) => Some(
                "a text that reads as a number ('123') would be stored as a number, which neither this tier nor \
                 proxywhirl reads back as text",
            ),
            (ColumnKind::Time, A::Text) => Some(
                "times would be stored as text of 15 digits (the microseconds lost), which neither this tier nor \
                 proxywhirl reads back, and compared and ordered as text",
            ),
            (ColumnKind::Real, A::Text) => {
                Some("numbers would be stored as text, which neither this tier nor proxywhirl reads back as a REAL")
            }
            (ColumnKind::UseCount, A::Text) if orders_by_use => Some(
                "this tier evicts by LFU: ORDER BY access_count would sort the counts as text ('10' before '9'); \
                 open it with another policy, or unbounded",
            ),
            (ColumnKind::Flag, A::Text) => Some(
                "a false flag would be stored as '0', which reads true (Python's bool('0')), and \
                 max(evicted_from_l1, ?) would keep '0' over 1",
            ),
            _ => None,
        }
    }

    /// The affinities a column of this kind may have, for messages.
    fn accepted(self, orders_by_use: bool) -> &'static str {
        match self {
            ColumnKind::Key | ColumnKind::Text => "a type of TEXT or BLOB affinity",
            ColumnKind::Time | ColumnKind::Real | ColumnKind::Flag => {
                "a type of INTEGER, REAL, NUMERIC or BLOB affinity"
            }
            ColumnKind::UseCount if orders_by_use => "a type of INTEGER, REAL, NUMERIC or BLOB affinity",
            ColumnKind::RowId => "INTEGER PRIMARY KEY",
            _ => "any type",
        }
    }
}

/// A column of a table as `pragma_table_info` gives it.
struct DeclaredColumn {
    name: String,
    declared: String,
    /// Its place in the primary key (0: not in it).
    primary_key: i64,
}

/// The columns of `table`, in order (empty when there is no such table).
fn declared_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<DeclaredColumn>> {
    let mut stmt = conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1)")?;
    let columns = stmt.query_map([table], |row| {
        Ok(DeclaredColumn {
            name: row.get(0)?,
            declared: row.get(1)?,
            primary_key: row.get(2)?,
        })
    })?;
    columns.collect()
}

/// Whether `table` is a STRICT table.
fn is_strict(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1")?;
    let mut rows = stmt.query([table])?;
    Ok(match rows.next()? {
        Some(row) => row.get::<_, i64>(0)? != 0,
        None => false,
    })
}

/// Why the column `column`, of kind `kind`, cannot be used (`None`: it can).
fn column_refusal(column: &DeclaredColumn, kind: ColumnKind, strict: bool, orders_by_use: bool) -> Option<String> {
    let declared = column.declared.trim();
    let shown = if declared.is_empty() {
        "with no type".to_owned()
    } else {
        declared.to_owned()
    };
    if kind == ColumnKind::RowId {
        // Only `INTEGER PRIMARY KEY` makes the column the rowid, which numbers new rows.
        return (!(declared.eq_ignore_ascii_case("INTEGER") && column.primary_key == 1)).then(|| {
            format!(
                "column {} is declared {shown}{}; expected INTEGER PRIMARY KEY: only that makes it the rowid, which \
                 numbers the recorded checks",
                column.name,
                if column.primary_key == 1 { " PRIMARY KEY" } else { "" },
            )
        });
    }
    if strict {
        // A STRICT table refuses a value it cannot convert (a BLOB for TEXT, a fraction for
        // INTEGER, ...): only proxywhirl's own type, or ANY (no conversion), holds what is written.
        let fits = declared.eq_ignore_ascii_case(kind.proxywhirl_type()) || declared.eq_ignore_ascii_case("ANY");
        return (!fits).then(|| {
            format!(
                "column {} is declared {shown} in a STRICT table; expected {} or ANY: a STRICT table refuses the \
                 values it cannot convert",
                column.name,
                kind.proxywhirl_type(),
            )
        });
    }
    let affinity = Affinity::of_declared(declared);
    kind.refusal(affinity, orders_by_use).map(|why| {
        format!(
            "column {} is declared {shown} ({} affinity); expected {} (proxywhirl's) or {}: {why}",
            column.name,
            affinity.name(),
            kind.proxywhirl_type(),
            kind.accepted(orders_by_use),
        )
    })
}

/// Whether a tier with `config` orders rows by `access_count`: a bounded LFU tier evicts by it.
pub(crate) fn orders_by_use(config: &CacheTierConfig) -> bool {
    config.max_entries.is_some() && config.eviction_policy == EvictionPolicy::Lfu
}

/// Fails with [`TierError::Schema`] unless `table` has every column of `required`, each
/// declared with a type this tier can use (see [`crate::sqlite`], "Column types"):
/// `orders_by_use` when the tier orders rows by `access_count` (bounded LFU).
pub(crate) fn require_columns(
    conn: &Connection,
    path: &Path,
    table: &str,
    required: &[(&str, ColumnKind)],
    orders_by_use: bool,
) -> Result<(), TierError> {
    let schema_error = |reason: String| TierError::Schema {
        path: path.to_path_buf(),
        reason,
    };
    let have = declared_columns(conn, table).map_err(sql_error("read schema", path))?;
    if have.is_empty() {
        return Err(schema_error(format!("there is no table {table}")));
    }
    let missing: Vec<&str> = required
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !have.iter().any(|h| h.name == *name))
        .collect();
    if !missing.is_empty() {
        return Err(schema_error(format!(
            "table {table} has no column {}",
            missing.join(", ")
        )));
    }
    let strict = is_strict(conn, table).map_err(sql_error("read schema", path))?;
    let refused: Vec<String> = required
        .iter()
        .filter_map(|(name, kind)| {
            let column = have.iter().find(|h| h.name == *name)?;
            column_refusal(column, *kind, strict, orders_by_use)
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(schema_error(format!("table {table}: {}", refused.join("; "))))
    }
}

/// Brings the schema to [`SCHEMA_VERSION`]: `upgrade(tx, from_version)` runs in one
/// `BEGIN IMMEDIATE` transaction when the recorded version is lower. Returns the version the
/// database had when it was upgraded, `None` when it was current.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    upgrade: impl FnOnce(&Transaction<'_>, u32) -> Result<(), TierError>,
) -> Result<Option<u32>, TierError> {
    let read_version = |conn: &Connection| -> Result<u32, TierError> {
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql_error("read schema version", path))?;
        u32::try_from(version)
            .ok()
            .filter(|v| *v <= SCHEMA_VERSION)
            .ok_or_else(|| TierError::Schema {
                path: path.to_path_buf(),
                reason: format!(
                    "schema version {version} is not one this pw-cache knows (0..={SCHEMA_VERSION}): written by a \
                     later version?"
                ),
            })
    };
    if read_version(conn)? == SCHEMA_VERSION {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error("upgrade schema", path))?;
    // Another process may have upgraded it meanwhile.
    let version = read_version(&tx)?;
    if version == SCHEMA_VERSION {
        return Ok(None);
    }
    upgrade(&tx, version)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql_error("record schema version", path))?;
    tx.commit().map_err(sql_error("upgrade schema", path))?;
    tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "upgraded cache database schema");
    Ok(Some(version))
}
