//! The SQL both tiers run on their table of entries ([`Layout`]: `l2_cache` or
//! `cache_entries`).

/// Which of the two tables a [`Store`] holds: the statements and the columns differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `l2_cache`: the 13 common columns.
    L2,
    /// `cache_entries`: the common columns, the 8 health columns, `created_at`, `updated_at`.
    L3,
}

/// The statements of one table.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) get: &'static str,
    pub(super) exists: &'static str,
    pub(super) upsert: &'static str,
    pub(super) delete: &'static str,
    pub(super) delete_all: &'static str,
    pub(super) count: &'static str,
    /// Every row, for the bound: SQLite counts them from the smallest index's pages without
    /// decoding a row (`count`'s filter on the key reads every row).
    pub(super) count_rows: &'static str,
    pub(super) keys: &'static str,
    pub(super) touch: &'static str,
    pub(super) record_access: &'static str,
    /// A health mark's two columns (?2 the new `failure_count`, ?3 the status).
    pub(super) mark_failure: &'static str,
    pub(super) health_detail: &'static str,
    /// Deletes one key if not written since ?2 (L3 only: `l2_cache` has no `updated_at`, and
    /// this is never prepared for it).
    pub(super) delete_unchanged: &'static str,
    /// Deletes every row not written since ?1 (L3 only, as `delete_unchanged`).
    pub(super) clear_unchanged: &'static str,
    /// Sets the two token columns of one key.
    pub(super) rotate_tokens: &'static str,
    /// Every row's `get` columns, then its rowid: eviction candidates in the policy's order.
    pub(super) candidates_lru: &'static str,
    pub(super) candidates_lfu: &'static str,
    pub(super) candidates_fifo: &'static str,
    /// Every expired row's `get` columns, then its rowid.
    pub(super) expired: &'static str,
    /// Every row's `get` columns, then its rowid.
    pub(super) all_rows: &'static str,
    /// Deletes one row by rowid.
    pub(super) delete_rowid: &'static str,
    /// Deletes one expired row by rowid if its tokens are still the ones given (?3, ?4).
    pub(super) delete_expired_rowid: &'static str,
    /// Credential columns of the first and the last rows holding one (`LIMIT ?1`).
    pub(super) sample_first: &'static str,
    pub(super) sample_last: &'static str,
}

/// The 13 columns both tables have, in `l2_cache`'s order (parameters ?1..?13).
macro_rules! common_columns {
    () => {
        "key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
         access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1"
    };
}

/// Every common column but the key, set from the upserted row.
macro_rules! common_updates {
    () => {
        "proxy_url = excluded.proxy_url, username_encrypted = excluded.username_encrypted, \
         password_encrypted = excluded.password_encrypted, source = excluded.source, \
         fetch_time = excluded.fetch_time, last_accessed = excluded.last_accessed, \
         access_count = excluded.access_count, ttl_seconds = excluded.ttl_seconds, \
         expires_at = excluded.expires_at, health_status = excluded.health_status, \
         failure_count = excluded.failure_count, evicted_from_l1 = excluded.evicted_from_l1"
    };
}

/// The 8 health columns of `cache_entries` (parameters ?14..?21 in the L3 upsert).
macro_rules! health_columns {
    () => {
        "last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
         next_check_time, last_health_error, total_health_checks, total_health_check_failures"
    };
}

macro_rules! statements {
    ($table:literal, select: $select:expr, upsert: $upsert:expr, record_access: $record:expr, health_detail: $detail:expr) => {
        Statements {
            get: concat!("SELECT ", $select, " FROM ", $table, " WHERE key = ?1"),
            exists: concat!("SELECT 1 FROM ", $table, " WHERE key = ?1"),
            upsert: $upsert,
            delete: concat!("DELETE FROM ", $table, " WHERE key = ?1"),
            delete_all: concat!("DELETE FROM ", $table),
            // The rows `keys` lists: a key that is not TEXT (NULL, written by something else)
            // is not an entry anyone can look up.
            count: concat!("SELECT COUNT(*) FROM ", $table, " WHERE typeof(key) = 'text'"),
            count_rows: concat!("SELECT COUNT(*) FROM ", $table),
            keys: concat!("SELECT key FROM ", $table),
            touch: concat!(
                "UPDATE ",
                $table,
                " SET last_accessed = max(last_accessed, ?2), access_count = access_count + ?3 WHERE key = ?1"
            ),
            record_access: $record,
            mark_failure: concat!(
                "UPDATE ",
                $table,
                " SET failure_count = ?2, health_status = ?3 WHERE key = ?1"
            ),
            health_detail: $detail,
            delete_unchanged: concat!(
                "DELETE FROM ",
                $table,
                " WHERE key = ?1 AND (updated_at IS NULL OR updated_at <= ?2)"
            ),
            clear_unchanged: concat!("DELETE FROM ", $table, " WHERE updated_at IS NULL OR updated_at <= ?1"),
            rotate_tokens: concat!(
                "UPDATE ",
                $table,
                " SET username_encrypted = ?2, password_encrypted = ?3 WHERE key = ?1"
            ),
            candidates_lru: concat!(
                "SELECT ",
                $select,
                ", rowid FROM ",
                $table,
                " ORDER BY last_accessed, rowid LIMIT ?1"
            ),
            candidates_lfu: concat!(
                "SELECT ",
                $select,
                ", rowid FROM ",
                $table,
                " ORDER BY access_count, last_accessed, rowid LIMIT ?1"
            ),
            candidates_fifo: concat!("SELECT ", $select, ", rowid FROM ", $table, " ORDER BY rowid LIMIT ?1"),
            expired: concat!("SELECT ", $select, ", rowid FROM ", $table, " WHERE expires_at <= ?1"),
            all_rows: concat!("SELECT ", $select, ", rowid FROM ", $table),
            delete_rowid: concat!("DELETE FROM ", $table, " WHERE rowid = ?1"),
            delete_expired_rowid: concat!(
                "DELETE FROM ",
                $table,
                " WHERE rowid = ?1 AND expires_at <= ?2 AND username_encrypted IS ?3 AND password_encrypted IS ?4"
            ),
            sample_first: concat!(
                "SELECT username_encrypted, password_encrypted FROM ",
                $table,
                " WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL ORDER BY rowid LIMIT ?1"
            ),
            sample_last: concat!(
                "SELECT username_encrypted, password_encrypted FROM ",
                $table,
                " WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL ORDER BY rowid DESC LIMIT ?1"
            ),
        }
    };
}

static L2_STATEMENTS: Statements = statements!(
    "l2_cache",
    select: common_columns!(),
    upsert: concat!(
        "INSERT INTO l2_cache (",
        common_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(key) DO UPDATE SET ",
        common_updates!()
    ),
    record_access: "UPDATE l2_cache SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4) WHERE key = ?1 AND last_accessed <= ?3",
    // L2 has no health columns: never prepared for it.
    health_detail: ""
);

// created_at is set on insert only (proxywhirl resets it on every put); updated_at moves.
static L3_STATEMENTS: Statements = statements!(
    "cache_entries",
    select: concat!(common_columns!(), ", ", health_columns!()),
    upsert: concat!(
        "INSERT INTO cache_entries (",
        common_columns!(),
        ", ",
        health_columns!(),
        ", created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?22) ON CONFLICT(key) DO UPDATE SET ",
        common_updates!(),
        ", last_health_check = excluded.last_health_check, \
         consecutive_health_failures = excluded.consecutive_health_failures, \
         consecutive_health_successes = excluded.consecutive_health_successes, \
         recovery_attempt = excluded.recovery_attempt, next_check_time = excluded.next_check_time, \
         last_health_error = excluded.last_health_error, total_health_checks = excluded.total_health_checks, \
         total_health_check_failures = excluded.total_health_check_failures, updated_at = excluded.updated_at"
    ),
    record_access: "UPDATE cache_entries SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4), updated_at = ?5 WHERE key = ?1 AND last_accessed <= ?3",
    health_detail: concat!("SELECT ", health_columns!(), " FROM cache_entries WHERE key = ?1")
);

impl Layout {
    pub(super) fn statements(self) -> &'static Statements {
        match self {
            Layout::L2 => &L2_STATEMENTS,
            Layout::L3 => &L3_STATEMENTS,
        }
    }

    /// The index of the rowid after the `get` columns in the statements that add it.
    pub(super) fn rowid_column(self) -> usize {
        match self {
            Layout::L2 => 13,
            Layout::L3 => 21,
        }
    }
}
