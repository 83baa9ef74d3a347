//! The Lua scripts of the tier, as Redis runs them: each is its flags line (see
//! [Memory](super#memory-maxmemory)), then parts from `lua/`, put together at compile time
//! (`script!`); those that read entry hashes get their field limits when first loaded
//! ([`with_entry_fields`]). Each is hashed once ([`SCRIPTS`]) and run by `EVALSHA`.
//!
//! The parts:
//! - `lua/common.lua`, what every script but the two reads starts with: `KEYS` = idx, exp, ins,
//!   seq, hid; `ARGV[1]` = the prefix, `ARGV[2]` = the origin; the functions that name, forget,
//!   publish, prune and touch entries, and the check of the indexes (`DAMAGED`);
//! - `lua/read_hash.lua`, the reading of entry hashes, for the scripts that return entries.
//!   Needs `BUDGET` (the most memory an entry hash within its limits takes,
//!   [`HASH_BUDGET_BYTES`]) and `entry_fields()` (every field of an entry hash, and each one's
//!   longest value), which [`with_entry_fields`] puts first;
//! - `lua/<script>.lua`, each script's own part.
//!
//! The flags line: `#!lua` (no flags) for a script that may grow memory: refused as a whole
//! when the server is over `maxmemory`; `#!lua flags=allow-oom` for one that only deletes (it
//! runs over `maxmemory`, so that a full server can be cleaned); `#!lua flags=no-writes` for a
//! read.

use std::sync::LazyLock;

use redis::Script;

use super::codec::{FIELD_LIMITS, HASH_BUDGET_BYTES};

/// The error code of a script that found the indexes damaged (`DAMAGED` in the scripts).
pub(super) const INDEX_DAMAGED_CODE: &str = "PWCINDEX";

/// Entries removed by one `clear` or expiry-cleanup script (and keys indexed or dropped by one
/// step of an index rebuild), so that no script runs near the command timeout.
pub(super) const SCRIPT_CHUNK: usize = 1024;

/// A script: its flags line, then each part (`lua/<part>.lua`), each after an empty line.
macro_rules! script {
    ($flags:literal; $($part:literal),+ $(,)?) => {
        concat!($flags, "\n", $("\n", include_str!(concat!("lua/", $part, ".lua"))),+)
    };
}

/// ARGV: 3 key, 4 max_entries ('' unbounded), 5 policy, 6 batch divisor, 7 expiry (Unix ms),
/// 8 expires_at, 9 now (created_at / updated_at), 10 last_accessed, 11 access_count,
/// 12 hits pending ('0'/'1'), 13 n hits, n × (key, last, hits), m fields, m × (name, value),
/// then the eviction: w (candidates wanted beyond those needed), v, v × (key, updated_at),
/// over ('1': store even if still full).
/// Returns {status (0 expired, 1 stored, 2 send the pending hits), evicted, hits applied}, or
/// {3, entries to evict, hits applied, evicted, key, hash, key, hash …} (each hash as `read_hash`
/// gives it): the first `need + w` candidates in the policy's order, for the caller to check
/// which it can read.
/// Unreadable entries are never evicted: the caller sends back the readable ones with the
/// `updated_at` it read; only those still at that version are evicted. Still full afterwards
/// (another host wrote meanwhile): candidates again. The caller sets `over` when unreadable
/// entries left it fewer readable ones than needed: the bound then yields to the rule.
pub(super) const PUT_LUA: &str = script!("#!lua"; "common", "read_hash", "put");

/// ARGV: 3 key. Returns whether the entry was there.
pub(super) const DELETE_LUA: &str = script!("#!lua flags=allow-oom"; "common", "delete");

/// ARGV: 3 key, 4 since (Unix seconds). Removes the entry only if its `updated_at` is at or
/// before `since` (or it has none), publishing the delete. Returns whether it removed it.
pub(super) const DELETE_SINCE_LUA: &str = script!("#!lua flags=allow-oom"; "common", "delete_since");

/// ARGV: 3 since (Unix seconds), 4 at most this many keys, 5 offset in the index. Removes the
/// entries of that slice of the index last written at or before `since`, publishing each
/// delete. Returns {entries removed, entries kept, keys seen}.
pub(super) const CLEAR_SINCE_LUA: &str = script!("#!lua flags=allow-oom"; "common", "clear_since");

/// ARGV: 3 at most this many keys. Returns {entries removed, keys left}; publishes the clear
/// once none is left.
pub(super) const CLEAR_LUA: &str = script!("#!lua flags=allow-oom"; "common", "clear");

/// ARGV: 3 now (Unix seconds), 4 at most this many keys, 5 offset, 6 mode: `ask` returns
/// {keys seen, key, hash, key, hash …} (each hash as `read_hash` gives it) of the expired
/// entries from `offset` on (index entries left without their hash are dropped from the
/// indexes and not returned); `del`, then
/// (key, updated_at) pairs, removes each entry still at that version and still expired, and
/// returns how many it removed. The caller checks in between which entries it can read:
/// unreadable ones are never removed as expired.
pub(super) const CLEANUP_LUA: &str = script!("#!lua flags=allow-oom"; "common", "read_hash", "cleanup");

/// Returns the number of entries.
pub(super) const SIZE_LUA: &str = script!("#!lua flags=allow-oom"; "common", "size");

/// ARGV: 3 at most this many keys (optional). Returns every key (the first in the index).
pub(super) const KEYS_LUA: &str = script!("#!lua flags=allow-oom"; "common", "keys");

/// ARGV: 3 policy, then (key, last, hits) per key. Returns 0.
pub(super) const TOUCH_LUA: &str = script!("#!lua"; "common", "touch");

/// ARGV: 3 policy, 4 updated_at, then (key, access_count, last_accessed, evicted 0/1) per
/// record. Returns how many entries changed.
pub(super) const RECORD_USES_LUA: &str = script!("#!lua"; "common", "record_uses");

/// ARGV: 3 key, 4 cap, 5 the record's JSON after its id (`"proxy_key":…}`). Returns the id,
/// or -1 when no entry has the key.
pub(super) const RECORD_CHECK_LUA: &str = script!("#!lua"; "common", "record_check");

/// ARGV: 3 older_than (Unix seconds), then keys. Returns how many checks were removed.
pub(super) const PRUNE_HISTORY_LUA: &str = script!("#!lua flags=allow-oom"; "common", "prune_history");

/// KEYS[1]: a health-history list; ARGV[1]: the longest record read. Returns the list's records
/// in list order, each longer than the limit replaced by its length (an integer): a huge record
/// is never sent.
pub(super) const READ_HISTORY_LUA: &str = concat!("#!lua flags=no-writes\n", include_str!("lua/read_history.lua"));

/// KEYS[1]: an entry's hash; ARGV: the fields to read (none: every field). Returns the hash as
/// `read_hash` gives it: nothing longer than its limit is read. The one script of a get: it
/// needs nothing of the common part.
pub(super) const READ_LUA: &str = script!("#!lua flags=no-writes"; "read_hash", "read");

/// ARGV: 3 mode, then
/// - `reset`: deletes each of idx, exp, ins that is not a sorted set. Returns 0.
/// - `stamps`, keys: each key's `created_at` as text ('0' when it has none).
/// - `add`, policy, keys (in the order of their `created_at`): indexes each key that has a
///   Redis key of its own: in exp at its `expires_at` (else the key's own expiry, else never),
///   in ins at the place it has or the next of `seq`, in idx by the policy's field (0 when it
///   is not a number: an unreadable entry is then met first by eviction, which skips it).
///   Returns how many.
/// - `drop`, keys: forgets each key without an entry. Returns how many.
/// - `finish`: deletes `seq` when the index is empty. Returns the number of entries.
///
/// Values longer than a number are not read (`small`).
pub(super) const REBUILD_LUA: &str = script!("#!lua"; "common", "rebuild");

/// ARGV: 3 key, 4 the `updated_at` read with the entry, 5 the count to evict at (`''`: never).
/// Refuses (`{3}`, nothing changed) unless the key still holds a hash with that `updated_at`:
/// the caller read that version and found it readable, and a put or a recorded use since moved
/// `updated_at` (an entry of another writer, possibly one this host cannot read, is never
/// marked on the strength of an older read). A mark does not move `updated_at` itself, so
/// marks of the same entry by several hosts never refuse each other. Otherwise `HINCRBY
/// failure_count 1` (an integer Redis cannot increment: `{4}`, nothing changed), then, on the
/// count it returned: at the threshold the entry is removed as the delete script removes it
/// (hash, history, indexes) and `del` published, `{2, count}`; below it `health_status` is
/// set to `unhealthy` and `put` published, `{1, count}`. `{0}` when the key holds nothing.
/// Nothing but `failure_count` and `health_status` is written; the hash keeps its expiry.
pub(super) const MARK_FAILURE_LUA: &str = script!("#!lua"; "common", "mark_failure");

/// ARGV: 3 key, 4 username token read ('' none), 5 its replacement, 6 password token read,
/// 7 its replacement. Writes the replacements only if the hash still holds the tokens read.
/// Returns 1 (rewritten), 0 (the tokens changed meanwhile: read again), -1 (no entry). Nothing
/// else is written (`updated_at` included) and nothing is published: the credentials are the
/// same, only their encryption changed.
pub(super) const ROTATE_LUA: &str = script!("#!lua"; "common", "rotate");

/// The scripts, each hashed once.
pub(super) struct Scripts {
    pub(super) put: Script,
    pub(super) delete: Script,
    pub(super) delete_since: Script,
    pub(super) clear_since: Script,
    pub(super) clear: Script,
    pub(super) cleanup: Script,
    pub(super) size: Script,
    pub(super) keys: Script,
    pub(super) read: Script,
    pub(super) rebuild: Script,
    pub(super) touch: Script,
    pub(super) record_uses: Script,
    pub(super) record_check: Script,
    pub(super) prune_history: Script,
    pub(super) read_history: Script,
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    put: Script::new(&with_entry_fields(PUT_LUA)),
    delete: Script::new(DELETE_LUA),
    delete_since: Script::new(DELETE_SINCE_LUA),
    clear_since: Script::new(CLEAR_SINCE_LUA),
    clear: Script::new(CLEAR_LUA),
    cleanup: Script::new(&with_entry_fields(CLEANUP_LUA)),
    size: Script::new(SIZE_LUA),
    keys: Script::new(KEYS_LUA),
    read: Script::new(&with_entry_fields(READ_LUA)),
    rebuild: Script::new(REBUILD_LUA),
    touch: Script::new(TOUCH_LUA),
    record_uses: Script::new(RECORD_USES_LUA),
    record_check: Script::new(RECORD_CHECK_LUA),
    prune_history: Script::new(PRUNE_HISTORY_LUA),
    read_history: Script::new(READ_HISTORY_LUA),
});

/// The rotation script, hashed once (beside [`SCRIPTS`], not in it).
pub(super) static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE_LUA));

/// The health-mark script, hashed once (beside [`SCRIPTS`], not in it).
pub(super) static MARK_FAILURE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MARK_FAILURE_LUA));

/// `script` with `BUDGET` ([`HASH_BUDGET_BYTES`]) and `entry_fields()` (the fields of an entry
/// hash, and the longest value of each: [`FIELD_LIMITS`]; tables built only when called)
/// defined first, after its flags line: what `lua/read_hash.lua` needs. They are
/// `lua/entry_fields.lua` with its `@NAME@` placeholders filled in, so the limits come from
/// `pw_cache_model::limits`, never from a copy of them.
pub(super) fn with_entry_fields(script: &str) -> String {
    const TEMPLATE: &str = include_str!("lua/entry_fields.lua");
    let (flags, body) = script.split_once('\n').unwrap_or((script, ""));
    let names: Vec<String> = FIELD_LIMITS.iter().map(|(field, _)| format!("'{field}'")).collect();
    let limits: Vec<String> = FIELD_LIMITS
        .iter()
        .map(|(field, limit)| format!("['{field}'] = {limit}"))
        .collect();
    let preamble = TEMPLATE
        .replace("@HASH_BUDGET_BYTES@", &HASH_BUDGET_BYTES.to_string())
        .replace("@FIELD_NAMES@", &names.join(", "))
        .replace("@FIELD_LIMITS@", &limits.join(", "));
    format!("{flags}\n{preamble}{body}")
}
