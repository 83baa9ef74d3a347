//! The SQL both tiers run on their table of entries ([`Layout`]: `l2_cache` or
//! `cache_entries`), spelled out in full for each table. (The health-history statements are
//! L3's own, in `l3.rs`.)

/// Which of the two tables a [`Store`](super::store::Store) holds: the statements and the columns differ.
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
    /// The rows `keys` lists: a key that is not TEXT (NULL, written by something else) is not
    /// an entry anyone can look up.
    pub(super) count: &'static str,
    /// Every row, for the bound: SQLite counts them from the smallest index's pages without
    /// decoding a row (`count`'s filter on the key reads every row).
    pub(super) count_rows: &'static str,
    pub(super) keys: &'static str,
    pub(super) touch: &'static str,
    pub(super) record_access: &'static str,
    /// A health mark's two columns (?2 the new `failure_count`, ?3 the status).
    pub(super) mark_failure: &'static str,
    /// The 8 health columns of one key (L3 only: empty for L2, never prepared for it).
    pub(super) health_detail: &'static str,
    /// Deletes one key if not written since ?2 (L3 only: `l2_cache` has no `updated_at`, and
    /// this is never prepared for it: empty for L2).
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

/// `l2_cache`'s statements. Its 13 columns, in its order, are the ones both tables have
/// (parameters ?1..?13 of the upsert): `key, proxy_url, username_encrypted, password_encrypted,
/// source, fetch_time, last_accessed, access_count, ttl_seconds, expires_at, health_status,
/// failure_count, evicted_from_l1`.
static L2_STATEMENTS: Statements = Statements {
    get: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1 \
        FROM l2_cache \
        WHERE key = ?1",
    exists: "SELECT 1 FROM l2_cache WHERE key = ?1",
    upsert: "INSERT INTO l2_cache (key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
        ON CONFLICT(key) DO UPDATE SET proxy_url = excluded.proxy_url, \
        username_encrypted = excluded.username_encrypted, password_encrypted = excluded.password_encrypted, \
        source = excluded.source, fetch_time = excluded.fetch_time, last_accessed = excluded.last_accessed, \
        access_count = excluded.access_count, ttl_seconds = excluded.ttl_seconds, expires_at = excluded.expires_at, \
        health_status = excluded.health_status, failure_count = excluded.failure_count, \
        evicted_from_l1 = excluded.evicted_from_l1",
    delete: "DELETE FROM l2_cache WHERE key = ?1",
    delete_all: "DELETE FROM l2_cache",
    count: "SELECT COUNT(*) FROM l2_cache WHERE typeof(key) = 'text'",
    count_rows: "SELECT COUNT(*) FROM l2_cache",
    keys: "SELECT key FROM l2_cache",
    touch: "UPDATE l2_cache SET last_accessed = max(last_accessed, ?2), access_count = access_count + ?3 \
        WHERE key = ?1",
    record_access: "UPDATE l2_cache SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4) \
        WHERE key = ?1 AND last_accessed <= ?3",
    mark_failure: "UPDATE l2_cache SET failure_count = ?2, health_status = ?3 WHERE key = ?1",
    // L2 has no health columns: never prepared for it.
    health_detail: "",
    // L2 has no `updated_at`: never prepared for it (its replays delete and clear).
    delete_unchanged: "",
    clear_unchanged: "",
    rotate_tokens: "UPDATE l2_cache SET username_encrypted = ?2, password_encrypted = ?3 WHERE key = ?1",
    candidates_lru: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, rowid \
        FROM l2_cache \
        ORDER BY last_accessed, rowid LIMIT ?1",
    candidates_lfu: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, rowid \
        FROM l2_cache \
        ORDER BY access_count, last_accessed, rowid LIMIT ?1",
    candidates_fifo: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, rowid \
        FROM l2_cache \
        ORDER BY rowid LIMIT ?1",
    expired: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, rowid \
        FROM l2_cache \
        WHERE expires_at <= ?1",
    all_rows: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, rowid \
        FROM l2_cache",
    delete_rowid: "DELETE FROM l2_cache WHERE rowid = ?1",
    delete_expired_rowid: "DELETE FROM l2_cache \
        WHERE rowid = ?1 AND expires_at <= ?2 AND username_encrypted IS ?3 AND password_encrypted IS ?4",
    sample_first: "SELECT username_encrypted, password_encrypted \
        FROM l2_cache \
        WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL \
        ORDER BY rowid LIMIT ?1",
    sample_last: "SELECT username_encrypted, password_encrypted \
        FROM l2_cache \
        WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL \
        ORDER BY rowid DESC LIMIT ?1",
};

/// `cache_entries`' statements: the 13 common columns, then the 8 health columns (parameters
/// ?14..?21 of the upsert): `last_health_check, consecutive_health_failures,
/// consecutive_health_successes, recovery_attempt, next_check_time, last_health_error,
/// total_health_checks, total_health_check_failures`; ?22 is both `created_at` and `updated_at`.
/// `created_at` is set on insert only (proxywhirl resets it on every put); `updated_at` moves.
static L3_STATEMENTS: Statements = Statements {
    get: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, last_health_check, \
        consecutive_health_failures, consecutive_health_successes, recovery_attempt, next_check_time, \
        last_health_error, total_health_checks, total_health_check_failures \
        FROM cache_entries \
        WHERE key = ?1",
    exists: "SELECT 1 FROM cache_entries WHERE key = ?1",
    upsert: "INSERT INTO cache_entries (key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
        last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
        next_check_time, last_health_error, total_health_checks, total_health_check_failures, created_at, \
        updated_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, \
        ?22) \
        ON CONFLICT(key) DO UPDATE SET proxy_url = excluded.proxy_url, \
        username_encrypted = excluded.username_encrypted, password_encrypted = excluded.password_encrypted, \
        source = excluded.source, fetch_time = excluded.fetch_time, last_accessed = excluded.last_accessed, \
        access_count = excluded.access_count, ttl_seconds = excluded.ttl_seconds, expires_at = excluded.expires_at, \
        health_status = excluded.health_status, failure_count = excluded.failure_count, \
        evicted_from_l1 = excluded.evicted_from_l1, last_health_check = excluded.last_health_check, \
        consecutive_health_failures = excluded.consecutive_health_failures, \
        consecutive_health_successes = excluded.consecutive_health_successes, \
        recovery_attempt = excluded.recovery_attempt, next_check_time = excluded.next_check_time, \
        last_health_error = excluded.last_health_error, total_health_checks = excluded.total_health_checks, \
        total_health_check_failures = excluded.total_health_check_failures, updated_at = excluded.updated_at",
    delete: "DELETE FROM cache_entries WHERE key = ?1",
    delete_all: "DELETE FROM cache_entries",
    count: "SELECT COUNT(*) FROM cache_entries WHERE typeof(key) = 'text'",
    count_rows: "SELECT COUNT(*) FROM cache_entries",
    keys: "SELECT key FROM cache_entries",
    touch: "UPDATE cache_entries SET last_accessed = max(last_accessed, ?2), access_count = access_count + ?3 \
        WHERE key = ?1",
    record_access: "UPDATE cache_entries SET access_count = ?2, last_accessed = ?3, \
        evicted_from_l1 = max(evicted_from_l1, ?4), updated_at = ?5 \
        WHERE key = ?1 AND last_accessed <= ?3",
    mark_failure: "UPDATE cache_entries SET failure_count = ?2, health_status = ?3 WHERE key = ?1",
    health_detail: "SELECT last_health_check, consecutive_health_failures, consecutive_health_successes, \
        recovery_attempt, next_check_time, last_health_error, total_health_checks, total_health_check_failures \
        FROM cache_entries \
        WHERE key = ?1",
    delete_unchanged: "DELETE FROM cache_entries WHERE key = ?1 AND (updated_at IS NULL OR updated_at <= ?2)",
    clear_unchanged: "DELETE FROM cache_entries WHERE updated_at IS NULL OR updated_at <= ?1",
    rotate_tokens: "UPDATE cache_entries SET username_encrypted = ?2, password_encrypted = ?3 WHERE key = ?1",
    candidates_lru: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
        last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
        next_check_time, last_health_error, total_health_checks, total_health_check_failures, rowid \
        FROM cache_entries \
        ORDER BY last_accessed, rowid LIMIT ?1",
    candidates_lfu: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
        last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
        next_check_time, last_health_error, total_health_checks, total_health_check_failures, rowid \
        FROM cache_entries \
        ORDER BY access_count, last_accessed, rowid LIMIT ?1",
    candidates_fifo: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, \
        last_accessed, access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, \
        last_health_check, consecutive_health_failures, consecutive_health_successes, recovery_attempt, \
        next_check_time, last_health_error, total_health_checks, total_health_check_failures, rowid \
        FROM cache_entries \
        ORDER BY rowid LIMIT ?1",
    expired: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, last_health_check, \
        consecutive_health_failures, consecutive_health_successes, recovery_attempt, next_check_time, \
        last_health_error, total_health_checks, total_health_check_failures, rowid \
        FROM cache_entries \
        WHERE expires_at <= ?1",
    all_rows: "SELECT key, proxy_url, username_encrypted, password_encrypted, source, fetch_time, last_accessed, \
        access_count, ttl_seconds, expires_at, health_status, failure_count, evicted_from_l1, last_health_check, \
        consecutive_health_failures, consecutive_health_successes, recovery_attempt, next_check_time, \
        last_health_error, total_health_checks, total_health_check_failures, rowid \
        FROM cache_entries",
    delete_rowid: "DELETE FROM cache_entries WHERE rowid = ?1",
    delete_expired_rowid: "DELETE FROM cache_entries \
        WHERE rowid = ?1 AND expires_at <= ?2 AND username_encrypted IS ?3 AND password_encrypted IS ?4",
    sample_first: "SELECT username_encrypted, password_encrypted \
        FROM cache_entries \
        WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL \
        ORDER BY rowid LIMIT ?1",
    sample_last: "SELECT username_encrypted, password_encrypted \
        FROM cache_entries \
        WHERE username_encrypted IS NOT NULL OR password_encrypted IS NOT NULL \
        ORDER BY rowid DESC LIMIT ?1",
};

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
