//! L3 in Redis (cargo feature `redis`): one tier shared by a fleet of hosts, each keeping its
//! own L1 (and L2), with the observable behaviour of [`crate::SqliteL3Tier`] and change events
//! the other hosts' upper tiers can follow.
//!
//! # Layout
//!
//! Every key lives under the namespace `ns` (default [`DEFAULT_NAMESPACE`]) and carries the
//! hash tag `{ns}`, so that every key of a namespace is in one Redis Cluster slot and one Lua
//! script can touch them all (specified in `docs/formats.md`, "Redis L3"):
//! - `pwc:{ns}:e:<key>`: a HASH per entry whose fields are the L3 column names
//!   (`key` … `updated_at`, the 8 health fields, `evicted_from_l1`), values as the SQLite L3
//!   stores them (times as Unix seconds written in Rust's shortest round-trip form, credentials
//!   as the text of their Fernet tokens, absent optional values as absent fields), with Redis's
//!   own expiry (`PEXPIREAT`) at `expires_at`, so expired entries disappear with no host
//!   cleaning;
//! - `pwc:{ns}:idx`: a ZSET of every key, scored by the eviction policy (LRU `last_accessed`,
//!   LFU `access_count`, FIFO insertion order), which enforces `max_entries`;
//!   `pwc:{ns}:ins`: a ZSET of every key scored by insertion order (SQLite's rowid: the
//!   tie-break), numbered by the counter `pwc:{ns}:seq` (deleted with the last entry: `seq`
//!   without an index means the index was lost); `pwc:{ns}:exp`: a ZSET of every key scored
//!   by `expires_at`, for [`CacheTier::cleanup_expired`] and to drop from the indexes the keys
//!   whose hash Redis expired. The three always hold the same keys (see
//!   [Damaged indexes](#damaged-indexes));
//! - `pwc:{ns}:h:<key>`: a LIST of the entry's health checks as JSON, newest first, capped at
//!   [`RedisL3Options::history_cap`], with the entry's expiry and deleted with it; ids from the
//!   counter `pwc:{ns}:hid`;
//! - `pwc:{ns}:events`: the channel every change is published on (see [Events](#events)).
//!
//! Every change that takes more than one command (a put, with its eviction; a delete; clear;
//! expiry cleanup; a batch of uses; a health check; a health mark; a credential rotation) is
//! one Lua script (`EVALSHA`, loaded again when the server lost it), so it is atomic, and with
//! `appendfsync always` durable once acknowledged. A get is one script too (reading an entry
//! without transferring an oversized value: see [Unreadable entries](#unreadable-entries)).
//!
//! # Same behaviour as the SQLite L3
//!
//! Eviction by LRU (`last_accessed`, then insertion order), LFU (`access_count`, then
//! `last_accessed`, then insertion order) or FIFO (insertion order; an update keeps its place),
//! in batches of the entries needed plus `max_entries / 64`; get hits of a bounded LRU or LFU
//! tier noted in memory and written every [`crate::sqlite::TOUCH_BATCH`] hits, before an
//! eviction, on flush and on close (a peek notes none; a put drops its key's notes); uses
//! recorded by [`CacheTier::record_accesses`] skip a record older than the stored
//! `last_accessed`; `created_at` is kept by an update, `updated_at` moves; the expiry boundary
//! is `now >= expires_at`; an unreadable value makes that entry [`TierError::Corrupt`], a token
//! no key opens [`TierError::Crypto`]; every call counts in [`TierHealth`], so three failures in
//! a row report the tier failing.
//!
//! Where Redis differs by design: an entry whose `expires_at` has passed is removed by Redis
//! itself (within Redis's expiry precision), so [`CacheTier::get`] and
//! [`CacheTier::contains`] stop finding it without a cleanup (a put of an entry already
//! expired stores nothing); and the history cap drops the checks recorded first.
//!
//! # Redis version
//!
//! Redis 7.0 or newer ([`MIN_REDIS_VERSION`]): the scripts declare flags (`#!lua`), which
//! Redis 7.0 introduced, and the index rebuild reads `PEXPIRETIME` (7.0). [`RedisL3Tier::open`]
//! reads the server's version (`INFO server`) and refuses an older one with
//! [`TierError::UnsupportedServer`]. (A server that hides `INFO` from the tier's ACL user is
//! not checked at open; on an older one, the first script fails to load.)
//!
//! # Memory (`maxmemory`)
//!
//! With `maxmemory` and `maxmemory-policy noeviction` (the setting `docs/fleet.md` requires),
//! a full server refuses the writes that grow memory. Redis decides this for a script once,
//! before it runs, from its flags: a script without flags would be checked at its first write
//! only, and let through entirely once that write (a `DEL` or `ZREM`, which free memory) has
//! passed, so a full server would go on growing. So every script here declares its flags:
//! - scripts that may grow memory (put, record hits and uses, record a health check, rebuild
//!   the index) declare none: over `maxmemory` they are refused as a whole, before any write,
//!   with Redis's `OOM` error, which the tier reports as [`TierError::Remote`], a tier failure:
//!   three in a row and the manager degrades the tier (its probe writes too, so it stays
//!   degraded until there is room again);
//! - scripts that only delete (delete, clear, expiry cleanup, size and keys, which drop index
//!   entries Redis expired, history pruning) declare `allow-oom`: they run on a full server, so
//!   that it can be cleaned;
//! - the read script (get, peek, health detail) declares `no-writes`: reads go on.
//!
//! Memory so stays within one entry's growth of `maxmemory` (plus what Redis itself uses
//! outside the data: client buffers). The choice of flags over a memory check in each script
//! (`INFO memory` from Lua) is Redis's own rule, applied by the server with its exact
//! accounting, at no cost; over making the first write one that grows memory, it keeps the
//! scripts free to delete first, and covers every script (the health-mark script too) by the
//! default of `lua_common!()`.
//!
//! # Unreadable entries
//!
//! An entry that cannot be read is reported ([`TierError::Corrupt`], naming the field) and
//! kept, as the crate docs' "Unreadable entries" require. Besides a damaged value, two cases:
//! - **A hash naming another key.** Every hash read (get, peek, health detail, the eviction and
//!   cleanup candidates, the credential sample) must hold in its `key` field the key it was
//!   read under: a hash `pwc:{ns}:e:a` whose `key` says `b` is unreadable, never served as
//!   `b` (nor, through a health mark or a promotion, written back as `b`).
//! - **A field longer than its limit** (`pw_cache_model::limits`, `FIELD_LIMITS`): a put of
//!   such an entry is refused ([`TierError::InvalidEntry`], nothing written); a stored one is
//!   unreadable, and its value is not transferred: every read goes through `read_hash`, which
//!   asks Redis for the hash's size first (`MEMORY USAGE`); a hash within
//!   `HASH_BUDGET_BYTES` is read whole and its values checked here, a larger one has each
//!   field's length checked (`HSTRLEN`) before anything of it is read. A 64 MB field costs a
//!   get a few Redis calls and names the field and its size.
//!
//! # Damaged indexes
//!
//! The indexes (`idx`, `exp`, `ins`) are derived from the entry hashes; a lost or garbled one
//! would leave hashes that [`CacheTier::size`], [`CacheTier::keys`] and [`CacheTier::clear`]
//! never see. Every script that relies on them (put, delete, clear, cleanup, size, keys)
//! first checks that each is a sorted set (or absent), that the three hold as many keys, and
//! that they are not gone while `seq` is there; if not, it changes nothing and fails with
//! `PWCINDEX`, the tier rebuilds the indexes from the entry hashes
//! ([`RedisL3Tier::rebuild_index`]) and runs the script again. [`RedisL3Tier::open`] checks
//! them the same way. A rebuild that cannot be done (the server is over `maxmemory`) fails the
//! operation with its error; indexes still damaged after a rebuild are
//! [`TierError::Schema`].
//!
//! # Events
//!
//! Every put, delete and clear, every health check recorded, and every health mark
//! ([`CacheTier::mark_failure`]: `put`, or `del` when it evicts) publishes on
//! `pwc:{ns}:events` the message `<origin> <kind> <key>` (`kind` is `put`, `del`, `clear`
//! (key `-`) or `health`; `origin` is [`RedisL3Tier::origin`] in 16 hex digits) in the same
//! script. [`RedisL3Tier::subscribe`] delivers the events of the other tier instances to a
//! callback, from a background thread that reconnects by itself and then reports
//! [`RemoteEvent::Resync`] (events may have been missed meanwhile). Not published: evictions,
//! expiry (cleanup or Redis's own) and recorded uses, which change no entry another host may
//! serve: its own copy expires, and a copy of an evicted entry is still valid.
//!
//! # Failures
//!
//! Connections come from an r2d2 pool of [`RedisL3Options::pool_size`]; each is made within
//! [`RedisL3Options::connect_timeout`] and reads and writes within
//! [`RedisL3Options::command_timeout`]; a connection is never waited for longer than the
//! connect timeout. With the server gone, an operation fails within about those timeouts with
//! [`TierError::Remote`] (a tier failure), never a multi-second stall; a connection that failed
//! is dropped, and a pooled connection found dead (a server restart) is replaced and the
//! operation retried on a new one. No error, and no `Debug` output, holds the URL or a password.
//!
//! # Non-goals
//!
//! No Redis Cluster client (the layout is cluster-ready, the connection is to one node), no
//! async API. No `compact`: a replaced value (a token under a retired key) stays in the
//! server's append-only file until Redis rewrites it (`auto-aof-rewrite-*`, `BGREWRITEAOF`),
//! which is the server operator's to run.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pw_cache_crypto::KeyRing;
use pw_cache_model::limits;
use pw_cache_model::timestamp::{self, from_unix_seconds, to_unix_seconds};
use pw_cache_model::{
    AccessRecord, CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, HealthDetail, HealthStatus,
    OffsetDateTime, Secret,
};
use r2d2::{ManageConnection, Pool};
use redis::{ConnectionLike, ErrorKind, RedisError, RedisResult, Script};

use crate::error::TierError;
use crate::health_history::{HealthCheck, HealthHistory, HealthRecord};
use crate::jsonl::EVICTION_BATCH_DIVISOR;
use crate::tier::{CacheTier, FailureMark, TierHealth};
use crate::touches::{Touch, Touches};

/// The namespace of [`RedisL3Options::new`].
pub const DEFAULT_NAMESPACE: &str = "pw-cache";
/// How long making a connection may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a command may wait to be written or answered, by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// Most pooled connections, by default.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Most health checks kept per entry, by default.
pub const DEFAULT_HISTORY_CAP: usize = 1000;

/// The oldest Redis the tier runs on (major, minor): its scripts declare flags (`#!lua`), so
/// that a server over `maxmemory` refuses a write script as a whole, and the index rebuild reads
/// `PEXPIRETIME`; both came with Redis 7.0.
pub const MIN_REDIS_VERSION: (u32, u32) = (7, 0);

/// The error code of a script that found the indexes damaged (`DAMAGED` in the scripts).
const INDEX_DAMAGED_CODE: &str = "PWCINDEX";

/// Keys asked for per `SCAN` (and `ZSCAN`) call of an index rebuild.
const SCAN_COUNT: usize = 1000;

/// Use records applied by one script: a batch of them (the manager sends up to its
/// `USE_BATCH`) is split so that no script runs near the command timeout.
const RECORD_CHUNK: usize = 256;

/// Entries removed by one `clear` or expiry-cleanup script, for the same reason.
const SCRIPT_CHUNK: usize = 1024;

/// Shortest wait before the event subscriber reconnects; it doubles up to
/// [`SUBSCRIBER_MAX_BACKOFF`].
const SUBSCRIBER_MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two reconnection attempts of the event subscriber.
pub const SUBSCRIBER_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A subscribed connection silent for this long is checked with a `PING` (a server that
/// vanished without closing the connection is noticed within it plus the command timeout).
const SUBSCRIBER_KEEPALIVE: Duration = Duration::from_secs(1);

/// How to reach the Redis server and lay out the tier in it.
///
/// `Debug` never shows the URL: it may carry a password (`redis://:pw@host:6379`).
#[derive(Clone)]
pub struct RedisL3Options {
    /// `redis://[user][:password@]host[:port][/db]`, or `rediss://…` with the `redis-tls`
    /// feature.
    pub url: Secret,
    /// Prefix of every key: `pwc:{namespace}:…`. Not empty; no `{`, `}`, whitespace or
    /// control characters.
    pub namespace: String,
    /// Longest time to make a connection, and to wait for a pooled one.
    pub connect_timeout: Duration,
    /// Longest time a command may wait to be written or answered.
    pub command_timeout: Duration,
    /// Most connections in the pool (at least 1). An operation waits for a free one at most
    /// the connect timeout, so it should be at least the number of threads using the tier at
    /// once.
    pub pool_size: u32,
    /// Most health checks kept per entry (at least 1): recording one more drops the first
    /// recorded.
    pub history_cap: usize,
    /// PEM certificates of the authorities a `rediss://` server's certificate must chain to,
    /// instead of the public ones (webpki's roots): for a server with a private CA. Needs the
    /// `redis-tls` feature.
    pub tls_root_certs_pem: Option<Vec<u8>>,
}

impl RedisL3Options {
    /// The server at `url`, with the defaults: namespace [`DEFAULT_NAMESPACE`], timeouts
    /// [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_COMMAND_TIMEOUT`], [`DEFAULT_POOL_SIZE`]
    /// connections, [`DEFAULT_HISTORY_CAP`] checks per entry.
    pub fn new(url: Secret) -> Self {
        Self {
            url,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            history_cap: DEFAULT_HISTORY_CAP,
            tls_root_certs_pem: None,
        }
    }

    /// With this namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// With this connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With this command timeout.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// With at most this many pooled connections.
    pub fn with_pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Keeping at most this many health checks per entry.
    pub fn with_history_cap(mut self, history_cap: usize) -> Self {
        self.history_cap = history_cap;
        self
    }

    /// Trusting these PEM root certificates for `rediss://` (see
    /// [`RedisL3Options::tls_root_certs_pem`]).
    pub fn with_tls_root_certs_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certs_pem = Some(pem.into());
        self
    }

    /// The client for the URL (and root certificates).
    fn client(&self) -> Result<redis::Client, String> {
        #[cfg(feature = "redis-tls")]
        {
            // redis builds its rustls config with the process's default crypto provider, which
            // rustls cannot pick by itself when another crate of the build enables a second
            // one (it would panic): make `ring` the default unless one is set already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url = self.url.expose_secret();
        match &self.tls_root_certs_pem {
            None => redis::Client::open(url).map_err(|e| e.to_string()),
            #[cfg(feature = "redis-tls")]
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(|e| e.to_string()),
            #[cfg(not(feature = "redis-tls"))]
            Some(_) => Err("TLS root certificates need the `redis-tls` feature of pw-cache-tiers".to_owned()),
        }
    }

    /// Fails unless every value is usable.
    fn check(&self) -> Result<(), TierError> {
        let bad = |reason: String| {
            Err(TierError::Remote {
                op: "check options",
                reason,
            })
        };
        let ns = &self.namespace;
        if !pw_cache_model::config::is_usable_redis_namespace(ns) {
            return bad(format!(
                "namespace {ns:?} must be non-empty, without braces, whitespace or control characters"
            ));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return bad("timeouts must be longer than zero".to_owned());
        }
        if self.pool_size == 0 || self.history_cap == 0 {
            return bad("pool_size and history_cap must be at least 1".to_owned());
        }
        Ok(())
    }
}

impl fmt::Debug for RedisL3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisL3Options")
            .field("url", &"***")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("history_cap", &self.history_cap)
            .field(
                "tls_root_certs_pem",
                &self.tls_root_certs_pem.as_ref().map(|pem| pem.len()),
            )
            .finish()
    }
}

/// Replaces, in text about the server, everything of its URL that may be secret.
struct Redactor {
    /// Longest first.
    needles: Vec<String>,
}

impl Redactor {
    fn new(url: &str) -> Self {
        let mut needles = vec![url.to_owned()];
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(rest));
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            needles.push(userinfo.to_owned());
            // `user:password` or `:password` (a lone name is a user name, no secret).
            if let Some((_user, password)) = userinfo.split_once(':') {
                needles.push(password.to_owned());
                needles.push(percent_decode(password));
            }
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), "***");
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}

/// `%XX` escapes decoded (what the URL parser gives the server as the password).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The names of a namespace's keys.
#[derive(Debug, Clone)]
struct Names {
    /// `pwc:{ns}:`
    prefix: String,
    idx: String,
    exp: String,
    ins: String,
    seq: String,
    hid: String,
    probe: String,
    channel: String,
}

impl Names {
    fn new(namespace: &str) -> Self {
        let prefix = format!("pwc:{{{namespace}}}:");
        let name = |suffix: &str| format!("{prefix}{suffix}");
        Self {
            idx: name("idx"),
            exp: name("exp"),
            ins: name("ins"),
            seq: name("seq"),
            hid: name("hid"),
            probe: name("probe"),
            channel: name("events"),
            prefix,
        }
    }

    fn entry(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }

    fn history(&self, key: &str) -> String {
        format!("{}h:{key}", self.prefix)
    }
}

/// What every script starts with: its flags line (see [Memory](#memory-maxmemory)), then
/// `KEYS` = idx, exp, ins, seq, hid; `ARGV[1]` = the prefix, `ARGV[2]` = the origin.
///
/// `lua_common!()` is a script that may grow memory: refused as a whole when the server is over
/// `maxmemory`. `lua_common!(allow_oom)` is one that only deletes (it runs over `maxmemory`, so
/// that a full server can be cleaned).
macro_rules! lua_common {
    () => {
        concat!("#!lua\n", lua_common!(@body))
    };
    (allow_oom) => {
        concat!("#!lua flags=allow-oom\n", lua_common!(@body))
    };
    (@body) => {
        r#"
local idx, exp, ins = KEYS[1], KEYS[2], KEYS[3]
local prefix, origin = ARGV[1], ARGV[2]
local function ekey(k) return prefix .. 'e:' .. k end
local function hkey(k) return prefix .. 'h:' .. k end
local function publish(kind, k) redis.call('PUBLISH', prefix .. 'events', origin .. ' ' .. kind .. ' ' .. k) end
-- Removes k and its history; `seq` goes with the last entry (so that `seq` without an index
-- means the index was lost).
local function forget(k)
  redis.call('DEL', ekey(k), hkey(k))
  redis.call('ZREM', idx, k)
  redis.call('ZREM', exp, k)
  redis.call('ZREM', ins, k)
  if redis.call('ZCARD', idx) == 0 then redis.call('DEL', KEYS[4]) end
end
-- Whether the indexes are damaged: one is not a sorted set, they do not hold the same number
-- of keys (every script adds and removes a key in all three), or they are gone while `seq`
-- is still there. Checked first by every script that relies on them, which then returns
-- the error DAMAGED (the caller rebuilds them and runs the script again).
local DAMAGED = 'PWCINDEX the indexes of the namespace are damaged'
local function index_damaged()
  local n = {}
  for i = 1, 3 do
    local c = redis.pcall('ZCARD', KEYS[i])
    if type(c) ~= 'number' then return true end
    n[i] = c
  end
  if n[1] ~= n[2] or n[1] ~= n[3] then return true end
  return n[1] == 0 and redis.call('EXISTS', KEYS[4]) == 1
end
local function server_seconds()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Drops from the indexes the keys whose hash Redis expired.
local function prune()
  local due = redis.call('ZRANGEBYSCORE', exp, '-inf', string.format('%.6f', server_seconds()))
  for _, k in ipairs(due) do
    if redis.call('EXISTS', ekey(k)) == 0 then forget(k) end
  end
end
local function num(v)
  local x = tonumber(v or '')
  if x == nil or x ~= x then return nil end
  return x
end
-- Sets the index score of k from its hash, by policy.
local function rescore(k, policy)
  local field
  if policy == 'lru' then field = 'last_accessed' elseif policy == 'lfu' then field = 'access_count' else return end
  local v = redis.call('HGET', ekey(k), field)
  if num(v) then redis.pcall('ZADD', idx, 'XX', v, k) end
end
-- A get hit noted in memory: last_accessed = max(last_accessed, last), access_count + hits.
local function touch(k, last, hits, policy)
  local ek = ekey(k)
  if redis.call('EXISTS', ek) == 0 then return end
  local cur = num(redis.call('HGET', ek, 'last_accessed'))
  if cur and num(last) > cur then redis.call('HSET', ek, 'last_accessed', last) end
  if redis.call('HEXISTS', ek, 'access_count') == 1 then redis.pcall('HINCRBY', ek, 'access_count', hits) end
  rescore(k, policy)
end
"#
    };
}

/// The reading of entry hashes, for the scripts that return entries. Needs `BUDGET` (the most
/// memory an entry hash within its limits takes, [`HASH_BUDGET_BYTES`]) and `entry_fields()`
/// (every field of an entry hash, and each one's longest value), which [`with_entry_fields`]
/// puts first.
macro_rules! lua_read {
    () => {
        r#"
-- The entry hash ek, only the fields `names` (all when nil), never transferring a long value:
-- {} when there is no key ek; {'!type'} when its key holds another type; {'!size', field, length}
-- when a field is longer than its limit; {'!none'} when the hash holds none of the fields;
-- else name, value, … of the fields it holds. A hash within BUDGET (the common case: one
-- MEMORY USAGE, then HGETALL) is read whole, and its values are checked against their limits
-- by the caller; a larger one has each field's length checked (HSTRLEN) before any is read,
-- and only the entry's fields are read.
local function read_hash(ek, names)
  local usage = redis.call('MEMORY', 'USAGE', ek, 'SAMPLES', '0')
  if not usage then return {} end
  if usage <= BUDGET then
    local got
    if names then got = redis.pcall('HMGET', ek, unpack(names)) else got = redis.pcall('HGETALL', ek) end
    if got.err then return {'!type'} end
    if not names then return got end
    local out = {}
    for i, f in ipairs(names) do
      if got[i] then
        out[#out + 1] = f
        out[#out + 1] = got[i]
      end
    end
    if #out == 0 then return {'!none'} end
    return out
  end
  local fields, limits = entry_fields()
  names = names or fields
  local ty = redis.call('TYPE', ek)['ok']
  if ty ~= 'hash' then return {'!type'} end
  for _, f in ipairs(names) do
    local n = redis.call('HSTRLEN', ek, f)
    if n > (limits[f] or 0) then return {'!size', f, n} end
  end
  local values = redis.call('HMGET', ek, unpack(names))
  local out = {}
  for i, f in ipairs(names) do
    if values[i] then
      out[#out + 1] = f
      out[#out + 1] = values[i]
    end
  end
  if #out == 0 then return {'!none'} end
  return out
end
"#
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
const PUT_LUA: &str = concat!(
    lua_common!(),
    lua_read!(),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
local key = ARGV[3]
local ek = ekey(key)
local policy = ARGV[5]
local ntouch = tonumber(ARGV[13])
local touches_at = 14
local nfields_at = touches_at + 3 * ntouch
local nfields = tonumber(ARGV[nfields_at])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ty = redis.call('TYPE', ek)['ok']
if ty ~= 'none' and ty ~= 'hash' then redis.call('DEL', ek); ty = 'none' end
local existed = ty == 'hash'
local created = false
if existed then created = redis.call('HGET', ek, 'created_at') end
if tonumber(ARGV[7]) <= now_ms then
  forget(key)
  publish('put', key)
  return {0, 0, 0}
end
local evicted, touched = 0, 0
if existed then
  redis.call('DEL', ek)
else
  forget(key)
  if ARGV[4] ~= '' then
    local max = tonumber(ARGV[4])
    prune()
    local n = redis.call('ZCARD', idx)
    if n >= max then
      if ARGV[12] == '1' and ntouch == 0 then return {2, 0, 0} end
      for j = 0, ntouch - 1 do
        local at = touches_at + 3 * j
        touch(ARGV[at], ARGV[at + 1], ARGV[at + 2], policy)
      end
      touched = 1
      local ev_at = nfields_at + 1 + 2 * nfields
      local want = tonumber(ARGV[ev_at])
      local nv = tonumber(ARGV[ev_at + 1])
      local over_ok = ARGV[ev_at + 2 + 2 * nv] == '1'
      for j = 0, nv - 1 do
        local v, stamp = ARGV[ev_at + 2 + 2 * j], ARGV[ev_at + 3 + 2 * j]
        local at = redis.call('HGET', ekey(v), 'updated_at')
        if at == stamp or (at == false and redis.call('EXISTS', ekey(v)) == 0) then
          forget(v)
          if at then evicted = evicted + 1 end
        end
      end
      if nv > 0 then n = redis.call('ZCARD', idx) end
      if n >= max and not over_ok then
        -- Still full (first round, or others wrote meanwhile): the candidates, in order.
        if want == 0 then want = 8 end
        local need = math.min(n - max + 1 + math.floor(max / tonumber(ARGV[6])), n)
        local count = math.min(need + want, n)
        local first = redis.call('ZRANGE', idx, 0, count - 1, 'WITHSCORES')
        local cands = {}
        if policy == 'fifo' then
          for i = 1, #first, 2 do cands[#cands + 1] = first[i] end
        elseif #first > 0 then
          -- Every entry up to the last score taken, ordered by score, then (LFU) last use, then
          -- insertion: equal scores come back from Redis in key order.
          local bound = first[#first]
          local ranked = {}
          local scores = redis.call('ZRANGEBYSCORE', idx, '-inf', bound, 'WITHSCORES')
          for i = 1, #scores, 2 do
            local k = scores[i]
            local la = 0
            if policy == 'lfu' then la = num(redis.call('HGET', ekey(k), 'last_accessed')) or math.huge end
            ranked[#ranked + 1] = {k, num(scores[i + 1]) or math.huge, la, num(redis.call('ZSCORE', ins, k)) or math.huge}
          end
          table.sort(ranked, function(a, b)
            if a[2] ~= b[2] then return a[2] < b[2] end
            if a[3] ~= b[3] then return a[3] < b[3] end
            if a[4] ~= b[4] then return a[4] < b[4] end
            return a[1] < b[1]
          end)
          local i = 1
          while #cands < count and i <= #ranked do cands[#cands + 1] = ranked[i][1]; i = i + 1 end
        end
        local reply = {3, need, touched, evicted}
        for _, k in ipairs(cands) do
          reply[#reply + 1] = k
          reply[#reply + 1] = read_hash(ekey(k))
        end
        return reply
      end
    end
  end
end
local hset = {'HSET', ek}
for j = 0, nfields - 1 do
  hset[#hset + 1] = ARGV[nfields_at + 1 + 2 * j]
  hset[#hset + 1] = ARGV[nfields_at + 2 + 2 * j]
end
hset[#hset + 1] = 'created_at'
hset[#hset + 1] = created or ARGV[9]
hset[#hset + 1] = 'updated_at'
hset[#hset + 1] = ARGV[9]
redis.call(unpack(hset))
redis.call('PEXPIREAT', ek, ARGV[7])
if redis.call('EXISTS', hkey(key)) == 1 then redis.call('PEXPIREAT', hkey(key), ARGV[7]) end
redis.call('ZADD', exp, ARGV[8], key)
local seq = redis.call('ZSCORE', ins, key)
if not seq then
  seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', ins, seq, key)
end
local score = seq
if policy == 'lru' then score = ARGV[10] elseif policy == 'lfu' then score = ARGV[11] end
redis.call('ZADD', idx, score, key)
publish('put', key)
return {1, evicted, touched}
"#
);

/// ARGV: 3 key. Returns whether the entry was there.
const DELETE_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
local key = ARGV[3]
local existed = redis.call('EXISTS', ekey(key))
forget(key)
publish('del', key)
return existed
"#
);

/// ARGV: 3 key, 4 since (Unix seconds). Removes the entry only if its `updated_at` is at or
/// before `since` (or it has none), publishing the delete. Returns whether it removed it.
const DELETE_SINCE_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
local key = ARGV[3]
local ek = ekey(key)
if redis.call('EXISTS', ek) == 0 then
  forget(key)
  return 0
end
local at = num(redis.call('HGET', ek, 'updated_at'))
if at and at > tonumber(ARGV[4]) then return 0 end
forget(key)
publish('del', key)
return 1
"#
);

/// ARGV: 3 since (Unix seconds), 4 at most this many keys, 5 offset in the index. Removes the
/// entries of that slice of the index last written at or before `since`, publishing each
/// delete. Returns {entries removed, entries kept, keys seen}.
const CLEAR_SINCE_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
local since = tonumber(ARGV[3])
local from = tonumber(ARGV[5])
local n, kept, seen = 0, 0, 0
for _, k in ipairs(redis.call('ZRANGE', idx, from, from + tonumber(ARGV[4]) - 1)) do
  seen = seen + 1
  local at = num(redis.call('HGET', ekey(k), 'updated_at'))
  if at and at > since then
    kept = kept + 1
  else
    n = n + redis.call('EXISTS', ekey(k))
    forget(k)
    publish('del', k)
  end
end
return {n, kept, seen}
"#
);

/// ARGV: 3 at most this many keys. Returns {entries removed, keys left}; publishes the clear
/// once none is left.
const CLEAR_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
local n = 0
for _, k in ipairs(redis.call('ZRANGE', idx, 0, tonumber(ARGV[3]) - 1)) do
  n = n + redis.call('EXISTS', ekey(k))
  forget(k)
end
local left = redis.call('ZCARD', idx)
if left == 0 then
  redis.call('DEL', idx, exp, ins, KEYS[4])
  publish('clear', '-')
end
return {n, left}
"#
);

/// ARGV: 3 now (Unix seconds), 4 at most this many keys, 5 offset, 6 mode: `ask` returns
/// {keys seen, key, hash, key, hash …} (each hash as `read_hash` gives it) of the expired
/// entries from `offset` on (index entries left without their hash are dropped from the
/// indexes and not returned); `del`, then
/// (key, updated_at) pairs, removes each entry still at that version and still expired, and
/// returns how many it removed. The caller checks in between which entries it can read:
/// unreadable ones are never removed as expired.
const CLEANUP_LUA: &str = concat!(
    lua_common!(allow_oom),
    lua_read!(),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
local now = ARGV[3]
if ARGV[6] == 'del' then
  local n = 0
  for i = 7, #ARGV, 2 do
    local k, stamp = ARGV[i], ARGV[i + 1]
    local score = redis.call('ZSCORE', exp, k)
    if score and tonumber(score) <= tonumber(now) and redis.call('HGET', ekey(k), 'updated_at') == stamp then
      forget(k)
      n = n + 1
    end
  end
  return n
end
local seen = 0
local reply = {0}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', tonumber(ARGV[5]), tonumber(ARGV[4]))) do
  seen = seen + 1
  if redis.call('EXISTS', ekey(k)) == 0 then
    forget(k)
  else
    reply[#reply + 1] = k
    reply[#reply + 1] = read_hash(ekey(k))
  end
end
reply[1] = seen
return reply
"#
);

/// Returns the number of entries.
const SIZE_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
prune()
return redis.call('ZCARD', idx)
"#
);

/// ARGV: 3 at most this many keys (optional). Returns every key (the first in the index).
const KEYS_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
if index_damaged() then return redis.error_reply(DAMAGED) end
prune()
local last = -1
if ARGV[3] then last = tonumber(ARGV[3]) - 1 end
return redis.call('ZRANGE', idx, 0, last)
"#
);

/// ARGV: 3 policy, then (key, last, hits) per key. Returns 0.
const TOUCH_LUA: &str = concat!(
    lua_common!(),
    r#"
for i = 4, #ARGV, 3 do touch(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[3]) end
return 0
"#
);

/// ARGV: 3 policy, 4 updated_at, then (key, access_count, last_accessed, evicted 0/1) per
/// record. Returns how many entries changed.
const RECORD_USES_LUA: &str = concat!(
    lua_common!(),
    r#"
local changed = 0
for i = 5, #ARGV, 4 do
  local k, count, last, ev = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ek = ekey(k)
  if redis.call('EXISTS', ek) == 1 then
    local cur = num(redis.call('HGET', ek, 'last_accessed'))
    if cur and cur <= num(last) then
      local set = {'HSET', ek, 'access_count', count, 'last_accessed', last, 'updated_at', ARGV[4]}
      if ev == '1' then
        set[#set + 1] = 'evicted_from_l1'
        set[#set + 1] = '1'
      end
      redis.call(unpack(set))
      rescore(k, ARGV[3])
      changed = changed + 1
    end
  end
end
return changed
"#
);

/// ARGV: 3 key, 4 cap, 5 the record's JSON after its id (`"proxy_key":…}`). Returns the id,
/// or -1 when no entry has the key.
const RECORD_CHECK_LUA: &str = concat!(
    lua_common!(),
    r#"
local key = ARGV[3]
local ek = ekey(key)
if redis.call('EXISTS', ek) == 0 then return -1 end
local id = redis.call('INCR', KEYS[5])
local hk = hkey(key)
redis.call('LPUSH', hk, '{"id":' .. string.format('%d', id) .. ',' .. ARGV[5])
redis.call('LTRIM', hk, 0, tonumber(ARGV[4]) - 1)
local ttl = redis.call('PTTL', ek)
if ttl > 0 then redis.call('PEXPIRE', hk, ttl) else redis.call('PERSIST', hk) end
publish('health', key)
return id
"#
);

/// ARGV: 3 older_than (Unix seconds), then keys. Returns how many checks were removed.
const PRUNE_HISTORY_LUA: &str = concat!(
    lua_common!(allow_oom),
    r#"
local older = tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  local hk = hkey(ARGV[i])
  for _, item in ipairs(redis.call('LRANGE', hk, 0, -1)) do
    local ok, rec = pcall(cjson.decode, item)
    if ok and type(rec) == 'table' and type(rec.check_time) == 'number' and rec.check_time < older then
      n = n + redis.call('LREM', hk, 1, item)
    end
  end
end
return n
"#
);

/// KEYS[1]: a health-history list; ARGV[1]: the longest record read. Returns the list's records
/// in list order, each longer than the limit replaced by its length (an integer): a huge record
/// is never sent.
const READ_HISTORY_LUA: &str = r#"#!lua flags=no-writes
local limit = tonumber(ARGV[1])
local out = {}
for i, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if #item > limit then out[i] = #item else out[i] = item end
end
return out
"#;

/// KEYS[1]: an entry's hash; ARGV: the fields to read (none: every field). Returns the hash as
/// `read_hash` gives it: nothing longer than its limit is read. The one script of a get: it
/// needs nothing of the common part.
const READ_LUA: &str = concat!(
    "#!lua flags=no-writes\n",
    lua_read!(),
    r#"
local names = nil
if #ARGV > 0 then names = ARGV end
return read_hash(KEYS[1], names)
"#
);

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
const REBUILD_LUA: &str = concat!(
    lua_common!(),
    r#"
local mode = ARGV[3]
-- Field f of hash ek when it is a short number (its text), else nil.
local function small(ek, f)
  if redis.call('HSTRLEN', ek, f) > 64 then return nil end
  local v = redis.call('HGET', ek, f)
  if num(v) then return v end
  return nil
end
if mode == 'reset' then
  for i = 1, 3 do
    local ty = redis.call('TYPE', KEYS[i])['ok']
    if ty ~= 'zset' and ty ~= 'none' then redis.call('DEL', KEYS[i]) end
  end
  return 0
elseif mode == 'stamps' then
  local out = {}
  for i = 4, #ARGV do
    local ek = ekey(ARGV[i])
    local at = nil
    if redis.call('TYPE', ek)['ok'] == 'hash' then at = small(ek, 'created_at') end
    out[#out + 1] = at or '0'
  end
  return out
elseif mode == 'add' then
  local policy = ARGV[4]
  local n = 0
  for i = 5, #ARGV do
    local k = ARGV[i]
    local ek = ekey(k)
    local ty = redis.call('TYPE', ek)['ok']
    if ty ~= 'none' then
      local expires, score = nil, nil
      local hash = ty == 'hash'
      if hash then expires = small(ek, 'expires_at') end
      if not expires then
        local at = redis.call('PEXPIRETIME', ek)
        if at > 0 then expires = string.format('%.3f', at / 1000) else expires = '+inf' end
      end
      local seq = redis.call('ZSCORE', ins, k)
      if not seq then
        seq = redis.call('INCR', KEYS[4])
        redis.call('ZADD', ins, seq, k)
      end
      if policy == 'lru' then
        if hash then score = small(ek, 'last_accessed') end
      elseif policy == 'lfu' then
        if hash then score = small(ek, 'access_count') end
      else
        score = seq
      end
      redis.call('ZADD', exp, expires, k)
      redis.call('ZADD', idx, score or 0, k)
      n = n + 1
    end
  end
  return n
elseif mode == 'drop' then
  local n = 0
  for i = 4, #ARGV do
    if redis.call('EXISTS', ekey(ARGV[i])) == 0 then
      forget(ARGV[i])
      n = n + 1
    end
  end
  return n
elseif mode == 'finish' then
  local n = redis.call('ZCARD', idx)
  if n == 0 then redis.call('DEL', KEYS[4]) end
  return n
end
return redis.error_reply('ERR unknown mode')
"#
);

/// The scripts, each hashed once.
struct Scripts {
    put: Script,
    delete: Script,
    delete_since: Script,
    clear_since: Script,
    clear: Script,
    cleanup: Script,
    size: Script,
    keys: Script,
    read: Script,
    rebuild: Script,
    touch: Script,
    record_uses: Script,
    record_check: Script,
    prune_history: Script,
    read_history: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
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

/// `script` with `BUDGET` ([`HASH_BUDGET_BYTES`]) and `entry_fields()` (the fields of an entry
/// hash, and the longest value of each: [`FIELD_LIMITS`]; tables built only when called)
/// defined first, after its flags line: what `lua_read!` needs. The limits so come from
/// `pw_cache_model::limits`, never from a copy of them.
fn with_entry_fields(script: &str) -> String {
    let (flags, body) = script.split_once('\n').unwrap_or((script, ""));
    let names: Vec<String> = FIELD_LIMITS.iter().map(|(field, _)| format!("'{field}'")).collect();
    let limits: Vec<String> = FIELD_LIMITS
        .iter()
        .map(|(field, limit)| format!("['{field}'] = {limit}"))
        .collect();
    format!(
        "{flags}\nlocal BUDGET = {HASH_BUDGET_BYTES}\nlocal function entry_fields() return {{{}}}, {{{}}} end\n{body}",
        names.join(", "),
        limits.join(", ")
    )
}

/// The most memory (`MEMORY USAGE`) an entry hash whose fields are within their limits takes,
/// with room to spare: twice the sum of the limits (the allocator rounds a value up, by a
/// quarter at most) plus 4 KB (the hash's own structures). A hash within it is read whole
/// (at most this much is transferred); a larger one field by field, each checked first.
const HASH_BUDGET_BYTES: usize = {
    let mut sum = 0;
    let mut i = 0;
    while i < FIELD_LIMITS.len() {
        sum += FIELD_LIMITS[i].1;
        i += 1;
    }
    2 * sum + 4096
};
// At most this much of one hash is ever transferred: keep it small.
const _: () = assert!(HASH_BUDGET_BYTES < 64 * 1024);

/// Keys checked per history-pruning script.
const PRUNE_CHUNK: usize = 256;

/// A connection of the pool: the redis connection, whether it failed (then the pool drops
/// it), and how many operations it served (a dead connection that served none is no stale
/// one: its failure is not retried).
struct PooledConn {
    conn: redis::Connection,
    broken: bool,
    uses: u64,
}

/// Makes connections within the connect timeout, with read and write timeouts.
struct Connector {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl Connector {
    fn connect_raw(&self) -> RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }
}

/// Logs the pool's connection failures (the URL redacted) at debug level: the operation that
/// waited reports them.
#[derive(Debug)]
struct QuietErrors {
    redactor: Arc<Redactor>,
}

impl r2d2::HandleError<RedisError> for QuietErrors {
    fn handle_error(&self, error: RedisError) {
        tracing::debug!(error = %self.redactor.clean(&error.to_string()), "redis connection failed");
    }
}

type RedisPool = Pool<ConnectorRef>;

/// Whether `e` leaves its connection usable (the server answered with an error).
fn connection_survives(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType
    )
}

/// A random id for this tier instance (std's per-process random hasher keys, the time and a
/// counter).
fn random_origin() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether `version` (`7.0.15`) is at least `(major, minor)`; text that is not a version is not.
fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.trim().split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        (Some(Ok(a)), None) => a > major || (a == major && minor == 0),
        _ => false,
    }
}

/// `text` with the special characters of a `SCAN MATCH` pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A float as stored: Rust's shortest text that reads back as the same `f64`.
fn real(x: f64) -> String {
    format!("{x}")
}

/// Unix milliseconds of `at`, rounded up (the hash lives until `expires_at` at least).
fn unix_millis_ceil(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp() * 1_000_000 + i64::from(at.microsecond());
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

/// What the put script answered.
#[derive(Debug)]
enum PutReply {
    /// Expired (not stored) or stored; entries evicted; whether it applied the hits sent.
    Done { evicted: u64, touched: bool },
    /// Eviction is due and the pending hits must be sent first.
    SendHits,
    /// Eviction is due: these candidates, in the policy's order (key, hash), of which the
    /// first `need` readable ones are to be evicted.
    Candidates {
        need: usize,
        touched: bool,
        evicted: u64,
        candidates: Vec<(String, Stored)>,
    },
}

impl PutReply {
    fn parse(value: &redis::Value) -> Result<Self, TierError> {
        let bad = || TierError::Remote {
            op: "write entry",
            reason: "unexpected reply from the put script".to_owned(),
        };
        let redis::Value::Array(items) = value else {
            return Err(bad());
        };
        let int = |i: usize| match items.get(i) {
            Some(redis::Value::Int(n)) => Ok(*n),
            _ => Err(bad()),
        };
        match int(0)? {
            0 | 1 => Ok(PutReply::Done {
                evicted: u64::try_from(int(1)?).unwrap_or(0),
                touched: int(2)? != 0,
            }),
            2 => Ok(PutReply::SendHits),
            3 => {
                let candidates = hashes_of(items.get(4..).unwrap_or_default()).ok_or_else(bad)?;
                Ok(PutReply::Candidates {
                    need: usize::try_from(int(1)?).unwrap_or(0),
                    touched: int(2)? != 0,
                    evicted: u64::try_from(int(3)?).unwrap_or(0),
                    candidates,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// What the cleanup script read of one chunk of expired entries.
struct ExpiredChunk {
    /// Keys of the expired range looked at (entries and index leftovers).
    seen: usize,
    /// The entries among them: key, hash.
    entries: Vec<(String, Stored)>,
}

impl ExpiredChunk {
    fn parse(value: &redis::Value) -> Result<Self, TierError> {
        let bad = || TierError::Remote {
            op: "delete expired entries",
            reason: "unexpected reply from the cleanup script".to_owned(),
        };
        let redis::Value::Array(items) = value else {
            return Err(bad());
        };
        let Some(redis::Value::Int(seen)) = items.first() else {
            return Err(bad());
        };
        Ok(Self {
            seen: usize::try_from(*seen).unwrap_or(0),
            entries: hashes_of(items.get(1..).unwrap_or_default()).ok_or_else(bad)?,
        })
    }
}

/// `(key, hash)` pairs of a script reply; `None` when it is not made of them.
fn hashes_of(items: &[redis::Value]) -> Option<Vec<(String, Stored)>> {
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let [redis::Value::BulkString(key), hash] = pair else {
            return None;
        };
        out.push((String::from_utf8_lossy(key).into_owned(), Stored::parse(hash.clone())?));
    }
    Some(out)
}

/// One entry hash as the scripts read it (`read_hash`): a field longer than its limit is never
/// transferred (nor, from a hash over the budget, a field that is not an entry's).
#[derive(Debug)]
enum Stored {
    /// No Redis key.
    Absent,
    /// The entry fields it holds: name, value, name, value …
    Fields(Vec<Vec<u8>>),
    /// Unreadable as it is (nothing of it was read): why.
    Unreadable(String),
}

impl Stored {
    /// `None` when `value` is not what `read_hash` returns.
    fn parse(value: redis::Value) -> Option<Self> {
        let redis::Value::Array(items) = value else {
            return None;
        };
        let bytes = |i: usize| match items.get(i) {
            Some(redis::Value::BulkString(b)) => Some(b.as_slice()),
            _ => None,
        };
        match items.first() {
            None => Some(Stored::Absent),
            // A marker: odd-sized (fields come in pairs).
            Some(redis::Value::BulkString(first)) if items.len() % 2 == 1 => match first.as_slice() {
                b"!type" => Some(Stored::Unreadable(
                    "its Redis key holds a value of another type".to_owned(),
                )),
                b"!none" => Some(Stored::Unreadable(
                    "its hash holds none of the fields of an entry".to_owned(),
                )),
                b"!size" => {
                    let field = std::str::from_utf8(bytes(1)?).ok()?;
                    let Some(redis::Value::Int(len)) = items.get(2) else {
                        return None;
                    };
                    Some(Stored::Unreadable(format!(
                        "field {field}: {len} bytes stored, more than its limit of {} bytes (not read)",
                        field_limit(field)
                    )))
                }
                _ => None,
            },
            Some(_) => {
                let flat = items
                    .into_iter()
                    .map(|v| match v {
                        redis::Value::BulkString(bytes) => Some(bytes),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                // A hash read whole (within the budget): each entry field against its limit.
                for pair in flat.chunks_exact(2) {
                    if let Some(&(field, limit)) = FIELD_LIMITS.iter().find(|(name, _)| name.as_bytes() == pair[0])
                        && pair[1].len() > limit
                    {
                        return Some(Stored::Unreadable(format!(
                            "field {field}: {} bytes stored, more than its limit of {limit} bytes",
                            pair[1].len()
                        )));
                    }
                }
                Some(Stored::Fields(flat))
            }
        }
    }
}

/// Longest value of a field of an entry hash that holds a number, a time or the health status:
/// an `i64` is at most 20 characters, Rust's shortest text of a Unix time in seconds about 20.
const SHORT_FIELD_MAX_BYTES: usize = 64;

/// Every field of an entry hash, with the longest value the tier writes into it and reads from
/// it (`pw_cache_model::limits` for the text fields; a longer stored value makes the entry
/// unreadable without being read).
const FIELD_LIMITS: [(&str, usize); 23] = [
    ("key", limits::MAX_KEY_BYTES),
    ("proxy_url", limits::MAX_PROXY_URL_BYTES),
    ("username_encrypted", limits::MAX_CREDENTIAL_TOKEN_BYTES),
    ("password_encrypted", limits::MAX_CREDENTIAL_TOKEN_BYTES),
    ("source", limits::MAX_SOURCE_BYTES),
    ("fetch_time", SHORT_FIELD_MAX_BYTES),
    ("last_accessed", SHORT_FIELD_MAX_BYTES),
    ("access_count", SHORT_FIELD_MAX_BYTES),
    ("ttl_seconds", SHORT_FIELD_MAX_BYTES),
    ("expires_at", SHORT_FIELD_MAX_BYTES),
    ("health_status", SHORT_FIELD_MAX_BYTES),
    ("failure_count", SHORT_FIELD_MAX_BYTES),
    ("last_health_check", SHORT_FIELD_MAX_BYTES),
    ("consecutive_health_failures", SHORT_FIELD_MAX_BYTES),
    ("consecutive_health_successes", SHORT_FIELD_MAX_BYTES),
    ("recovery_attempt", SHORT_FIELD_MAX_BYTES),
    ("next_check_time", SHORT_FIELD_MAX_BYTES),
    ("last_health_error", limits::MAX_LAST_HEALTH_ERROR_BYTES),
    ("total_health_checks", SHORT_FIELD_MAX_BYTES),
    ("total_health_check_failures", SHORT_FIELD_MAX_BYTES),
    ("evicted_from_l1", SHORT_FIELD_MAX_BYTES),
    ("created_at", SHORT_FIELD_MAX_BYTES),
    ("updated_at", SHORT_FIELD_MAX_BYTES),
];

/// The limit of `field` in [`FIELD_LIMITS`] (0 for a field that is not there).
fn field_limit(field: &str) -> usize {
    FIELD_LIMITS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(0, |(_, limit)| *limit)
}

/// `key` for an error: as it is, or its start when it is longer than a key may be.
fn shown_key(key: &str) -> String {
    if key.len() <= limits::MAX_KEY_BYTES {
        return key.to_owned();
    }
    let mut end = 64;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

/// The fields of `entry`'s hash (all but `created_at` and `updated_at`), credentials encrypted
/// with the ring's current key. An entry with a field longer than its limit
/// (`pw_cache_model::limits`) is refused: [`TierError::InvalidEntry`], naming the field.
fn entry_fields(entry: &CacheEntry, ring: &KeyRing) -> Result<Vec<(&'static str, String)>, TierError> {
    if entry.key.is_empty() {
        return Err(TierError::InvalidEntry {
            key: String::new(),
            reason: "the key is empty".to_owned(),
        });
    }
    if let Some(over) = limits::first_oversized(entry) {
        return Err(TierError::InvalidEntry {
            key: shown_key(&entry.key),
            reason: over.to_string(),
        });
    }
    // The SQLite L3's bound: the same entries are storable in both.
    let int = |field: &str, value: u64| {
        i64::try_from(value)
            .map(|v| v.to_string())
            .map_err(|_| TierError::InvalidEntry {
                key: entry.key.clone(),
                reason: format!("{field} {value} does not fit a 64-bit signed integer"),
            })
    };
    let mut out = vec![("key", entry.key.clone()), ("proxy_url", entry.proxy_url.clone())];
    if let Some(s) = &entry.username {
        out.push(("username_encrypted", ring.encrypt(s).as_str().to_owned()));
    }
    if let Some(s) = &entry.password {
        out.push(("password_encrypted", ring.encrypt(s).as_str().to_owned()));
    }
    out.extend([
        ("source", entry.source.clone()),
        ("fetch_time", real(to_unix_seconds(entry.fetch_time))),
        ("last_accessed", real(to_unix_seconds(entry.last_accessed))),
        ("access_count", int("access_count", entry.access_count)?),
        ("ttl_seconds", int("ttl_seconds", entry.ttl_seconds)?),
        ("expires_at", real(to_unix_seconds(entry.expires_at))),
        ("health_status", entry.health_status.as_str().to_owned()),
        ("failure_count", int("failure_count", entry.failure_count)?),
    ]);
    if let Some(t) = entry.last_health_check {
        out.push(("last_health_check", real(to_unix_seconds(t))));
    }
    out.extend([
        (
            "consecutive_health_failures",
            int("consecutive_health_failures", entry.consecutive_health_failures)?,
        ),
        (
            "consecutive_health_successes",
            int("consecutive_health_successes", entry.consecutive_health_successes)?,
        ),
        ("recovery_attempt", int("recovery_attempt", entry.recovery_attempt)?),
    ]);
    if let Some(t) = entry.next_check_time {
        out.push(("next_check_time", real(to_unix_seconds(t))));
    }
    if let Some(e) = &entry.last_health_error {
        out.push(("last_health_error", e.clone()));
    }
    out.extend([
        (
            "total_health_checks",
            int("total_health_checks", entry.total_health_checks)?,
        ),
        (
            "total_health_check_failures",
            int("total_health_check_failures", entry.total_health_check_failures)?,
        ),
        (
            "evicted_from_l1",
            if entry.evicted_from_l1 { "1" } else { "0" }.to_owned(),
        ),
    ]);
    // What is written can be read back: tokens and numbers within their limits too.
    if let Some((field, value)) = out.iter().find(|(field, value)| value.len() > field_limit(field)) {
        return Err(TierError::InvalidEntry {
            key: entry.key.clone(),
            reason: format!(
                "{field} is {} bytes long as stored, more than its limit of {} bytes",
                value.len(),
                field_limit(field)
            ),
        });
    }
    Ok(out)
}

/// Typed reads of one hash's fields; a value that does not fit is [`TierError::Corrupt`].
struct Fields<'a> {
    key: &'a str,
    map: HashMap<&'a str, &'a [u8]>,
}

impl<'a> Fields<'a> {
    /// `flat` is `HGETALL`'s reply: name, value, name, value …
    fn new(key: &'a str, flat: &'a [Vec<u8>]) -> Self {
        let map = flat
            .chunks_exact(2)
            .filter_map(|pair| Some((std::str::from_utf8(&pair[0]).ok()?, pair[1].as_slice())))
            .collect();
        Self { key, map }
    }

    /// The `key` field must be the key the hash was read under: a hash naming another key is
    /// unreadable, never served (nor written back) as that other key.
    fn check_key(&self) -> Result<(), TierError> {
        let stored = self.text("key")?;
        if stored == self.key {
            Ok(())
        } else {
            Err(self.corrupt(
                "key",
                format_args!("holds {:?}, not the key it is stored under", shown_key(&stored)),
            ))
        }
    }

    fn corrupt(&self, field: &str, what: impl fmt::Display) -> TierError {
        TierError::Corrupt {
            key: self.key.to_owned(),
            reason: format!("field {field}: {what}"),
        }
    }

    fn optional_text(&self, field: &str) -> Result<Option<String>, TierError> {
        self.map
            .get(field)
            .map(|bytes| {
                std::str::from_utf8(bytes)
                    .map(str::to_owned)
                    .map_err(|_| self.corrupt(field, "not UTF-8"))
            })
            .transpose()
    }

    fn text(&self, field: &str) -> Result<String, TierError> {
        self.optional_text(field)?.ok_or_else(|| self.corrupt(field, "missing"))
    }

    fn optional_time(&self, field: &str) -> Result<Option<OffsetDateTime>, TierError> {
        let Some(text) = self.optional_text(field)? else {
            return Ok(None);
        };
        let seconds: f64 = text
            .parse()
            .map_err(|_| self.corrupt(field, format_args!("{text:?} is not a number")))?;
        from_unix_seconds(seconds).map(Some).map_err(|e| self.corrupt(field, e))
    }

    fn time(&self, field: &str) -> Result<OffsetDateTime, TierError> {
        self.optional_time(field)?.ok_or_else(|| self.corrupt(field, "missing"))
    }

    fn count(&self, field: &str) -> Result<u64, TierError> {
        let text = self.text(field)?;
        text.parse()
            .map_err(|_| self.corrupt(field, format_args!("{text:?} is not a non-negative integer")))
    }

    /// Non-zero is true; absent is false (as the SQLite tiers read NULL).
    fn flag(&self, field: &str) -> Result<bool, TierError> {
        match self.optional_text(field)? {
            None => Ok(false),
            Some(text) => text
                .parse::<i64>()
                .map(|n| n != 0)
                .map_err(|_| self.corrupt(field, format_args!("{text:?} is not an integer"))),
        }
    }

    fn status(&self, field: &str) -> Result<HealthStatus, TierError> {
        self.text(field)?.parse().map_err(|e| self.corrupt(field, e))
    }

    /// A credential token's bytes; absent or empty is no credential.
    fn token(&self, field: &str) -> Option<&'a [u8]> {
        self.map.get(field).copied().filter(|bytes| !bytes.is_empty())
    }

    fn entry(&self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        self.check_key()?;
        let mut entry = CacheEntry {
            key: self.text("key")?,
            proxy_url: self.text("proxy_url")?,
            username: None,
            password: None,
            source: self.text("source")?,
            fetch_time: self.time("fetch_time")?,
            last_accessed: self.time("last_accessed")?,
            access_count: self.count("access_count")?,
            ttl_seconds: self.count("ttl_seconds")?,
            expires_at: self.time("expires_at")?,
            health_status: self.status("health_status")?,
            failure_count: self.count("failure_count")?,
            evicted_from_l1: self.flag("evicted_from_l1")?,
            last_health_check: None,
            consecutive_health_failures: 0,
            consecutive_health_successes: 0,
            recovery_attempt: 0,
            next_check_time: None,
            last_health_error: None,
            total_health_checks: 0,
            total_health_check_failures: 0,
        };
        self.health_detail()?.apply_to(&mut entry);
        let open = |field: &str| {
            self.token(field)
                .map(|bytes| ring.decrypt_bytes(bytes))
                .transpose()
                .map_err(|source| TierError::Crypto {
                    key: self.key.to_owned(),
                    source,
                })
        };
        entry.username = open("username_encrypted")?;
        entry.password = open("password_encrypted")?;
        Ok(entry)
    }

    fn health_detail(&self) -> Result<HealthDetail, TierError> {
        Ok(HealthDetail {
            last_health_check: self.optional_time("last_health_check")?,
            consecutive_health_failures: self.count("consecutive_health_failures")?,
            consecutive_health_successes: self.count("consecutive_health_successes")?,
            recovery_attempt: self.count("recovery_attempt")?,
            next_check_time: self.optional_time("next_check_time")?,
            last_health_error: self.optional_text("last_health_error")?,
            total_health_checks: self.count("total_health_checks")?,
            total_health_check_failures: self.count("total_health_check_failures")?,
        })
    }
}

/// The eight health fields, in the order [`RedisL3Tier::health_detail`] reads them.
const HEALTH_FIELDS: [&str; 8] = [
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
];

/// A health-history record as stored, without its id (written before it by the script).
#[derive(serde::Serialize)]
struct CheckJson<'a> {
    proxy_key: &'a str,
    check_time: f64,
    status: &'a str,
    response_time_ms: Option<f64>,
    error_message: Option<&'a str>,
    check_url: &'a str,
}

/// A health-history record as read; numbers kept as their text, read with Rust's correctly
/// rounded parser.
#[derive(serde::Deserialize)]
struct CheckRead<'a> {
    id: i64,
    #[serde(borrow)]
    proxy_key: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    check_time: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    response_time_ms: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    error_message: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    check_url: std::borrow::Cow<'a, str>,
}

/// Reads one stored record of `proxy_key`'s history.
fn read_check(proxy_key: &str, item: &[u8]) -> Result<HealthRecord, TierError> {
    let corrupt = |what: String| TierError::Corrupt {
        key: proxy_key.to_owned(),
        reason: format!("health history record: {what}"),
    };
    let rec: CheckRead<'_> = serde_json::from_slice(item).map_err(|e| corrupt(e.to_string()))?;
    let id = rec.id;
    let corrupt = |what: String| TierError::Corrupt {
        key: proxy_key.to_owned(),
        reason: format!("health history record {id}: {what}"),
    };
    let number = |field: &str, raw: &serde_json::value::RawValue| -> Result<Option<f64>, TierError> {
        match raw.get() {
            "null" => Ok(None),
            text => text
                .parse::<f64>()
                .map(Some)
                .map_err(|_| corrupt(format!("{field} {text} is not a number"))),
        }
    };
    let check_time = number("check_time", rec.check_time)?.ok_or_else(|| corrupt("check_time is null".to_owned()))?;
    Ok(HealthRecord {
        id,
        check: HealthCheck {
            proxy_key: rec.proxy_key.into_owned(),
            check_time: from_unix_seconds(check_time).map_err(|e| corrupt(format!("check_time: {e}")))?,
            status: rec.status.parse().map_err(|e| corrupt(format!("status: {e}")))?,
            response_time_ms: match rec.response_time_ms {
                Some(raw) => number("response_time_ms", raw)?,
                None => None,
            },
            error_message: rec.error_message.map(std::borrow::Cow::into_owned),
            check_url: rec.check_url.into_owned(),
        },
    })
}

/// The L3 tier in Redis: see the module docs.
pub struct RedisL3Tier {
    connector: Arc<Connector>,
    pool: RwLock<Option<RedisPool>>,
    names: Names,
    ring: Arc<KeyRing>,
    max_entries: Option<u64>,
    policy: EvictionPolicy,
    /// `Some` for bounded LRU and LFU tiers.
    touches: Option<Touches>,
    evictions: AtomicU64,
    /// Unreadable entries eviction met and left in place.
    unreadable_skipped: AtomicU64,
    /// Whether the bound was exceeded because only unreadable entries were left to evict
    /// (warned once).
    over_bound_warned: AtomicBool,
    health: TierHealth,
    origin: u64,
    pool_size: u32,
    history_cap: usize,
    redactor: Arc<Redactor>,
}

impl fmt::Debug for RedisL3Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisL3Tier")
            .field("url", &"***")
            .field("prefix", &self.names.prefix)
            .field("origin", &format_args!("{:016x}", self.origin))
            .field("max_entries", &self.max_entries)
            .field("policy", &self.policy)
            .field("connect_timeout", &self.connector.connect_timeout)
            .field("command_timeout", &self.connector.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("history_cap", &self.history_cap)
            .field("health", &self.health)
            .finish()
    }
}

impl RedisL3Tier {
    /// Connects to the server of `options` and checks it answers (`PING`). Entries hold at
    /// most `config.max_entries` under `config.eviction_policy`; credentials are encrypted
    /// with `ring`'s current key and decrypted with any of its keys.
    ///
    /// Then checks the server's version (Redis 7.0 or newer, see
    /// [Redis version](self#redis-version)) and the namespace's indexes, which it rebuilds
    /// when they are damaged ([`RedisL3Tier::rebuild_index`]).
    ///
    /// Errors ([`TierError::Remote`], never holding the URL): options that cannot be used, a
    /// URL that does not parse (or `rediss://`, or root certificates, without the `redis-tls`
    /// feature), no server answering within about the connect timeout (nor, for `rediss://`,
    /// with a certificate that chains to a trusted root), a refused password;
    /// [`TierError::UnsupportedServer`]: a server older than Redis 7.0; a damaged index that
    /// cannot be rebuilt (e.g. the server is over `maxmemory`).
    pub fn open(options: &RedisL3Options, config: &CacheTierConfig, ring: Arc<KeyRing>) -> Result<Self, TierError> {
        options.check()?;
        let redactor = Arc::new(Redactor::new(options.url.expose_secret()));
        let client = options.client().map_err(|e| TierError::Remote {
            op: "open",
            reason: redactor.clean(&e),
        })?;
        let tracks_hits = config.max_entries.is_some() && config.eviction_policy != EvictionPolicy::Fifo;
        let tier = Self {
            connector: Arc::new(Connector {
                client,
                connect_timeout: options.connect_timeout,
                command_timeout: options.command_timeout,
            }),
            pool: RwLock::new(None),
            names: Names::new(&options.namespace),
            ring,
            max_entries: config.max_entries,
            policy: config.eviction_policy,
            touches: tracks_hits.then(Touches::default),
            evictions: AtomicU64::new(0),
            unreadable_skipped: AtomicU64::new(0),
            over_bound_warned: AtomicBool::new(false),
            health: TierHealth::new(),
            origin: random_origin(),
            pool_size: options.pool_size,
            history_cap: options.history_cap,
            redactor,
        };
        *tier.pool.write().unwrap_or_else(PoisonError::into_inner) = Some(tier.new_pool());
        tier.run("connect", None, |c| redis::cmd("PING").query::<()>(c))?;
        tier.check_server_version()?;
        // Damaged indexes are found, and rebuilt, by the check every index script starts with.
        tier.script::<i64>("check index", &SCRIPTS.size, &[])?;
        Ok(tier)
    }

    /// Fails with [`TierError::UnsupportedServer`] when the server says (`INFO server`) it is
    /// older than [`MIN_REDIS_VERSION`]. A server that does not say (`INFO` refused by an ACL)
    /// is not checked here: its first script would fail.
    fn check_server_version(&self) -> Result<(), TierError> {
        let info: Option<String> = self.run("check server version", None, |c| {
            match redis::cmd("INFO").arg("server").query::<String>(c) {
                Ok(text) => Ok(Some(text)),
                Err(e) if connection_survives(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        let Some(version) = info.as_deref().and_then(|text| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix("redis_version:"))
                .map(str::to_owned)
        }) else {
            return Ok(());
        };
        if version_at_least(&version, MIN_REDIS_VERSION) {
            return Ok(());
        }
        let (major, minor) = MIN_REDIS_VERSION;
        Err(TierError::UnsupportedServer {
            reason: format!(
                "Redis {version} is older than {major}.{minor}, which the Redis L3 tier needs (its Lua scripts \
                 declare flags, so that a server over maxmemory refuses their writes)"
            ),
        })
    }

    /// The random id of this tier instance, the `<origin>` of the events it publishes.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The prefix of every key of the tier: `pwc:{namespace}:`.
    pub fn key_prefix(&self) -> &str {
        &self.names.prefix
    }

    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Rebuilds the namespace's indexes (`idx`, `exp`, `ins`) from its entry hashes; how many
    /// entries they index afterwards.
    ///
    /// Done by the tier itself when it finds them damaged — at open, and by every script that
    /// relies on them (put, delete, clear, size, keys, expiry cleanup), which then runs again
    /// — so that the tier is never silently smaller than what Redis holds. For an operator,
    /// e.g. after a restore of some keys only.
    ///
    /// In steps, none of them long: an index key of another type is deleted; every
    /// `pwc:{ns}:e:*` key is found with `SCAN` (in chunks of 1,000: the whole keyspace of the
    /// database is walked, the other namespaces' keys too) and indexed: `exp` by its
    /// `expires_at`, `idx` by the policy's field (`last_accessed`, `access_count`, or the
    /// insertion order), `ins` keeps an entry's place, and entries that had none get the next
    /// places in the order of their `created_at` (insertion order approximated). An entry whose
    /// fields are unreadable is indexed too (it is counted, listed and cleared, and eviction and
    /// expiry skip it as always). Then index members without an entry are dropped. Other tier
    /// instances may go on meanwhile: each step is atomic per key.
    ///
    /// Errors: [`TierError::Remote`] (the server is unreachable, or over `maxmemory`: a rebuild
    /// adds to the indexes, so it is refused like any write).
    pub fn rebuild_index(&self) -> Result<usize, TierError> {
        self.health.observe(self.rebuild_index_inner())
    }

    /// Calls `on_event` with every change other tier instances (other hosts, other processes,
    /// other tiers of this process) publish on the namespace, from a background thread with
    /// its own connection, until the [`Subscription`] is dropped. The thread reconnects by
    /// itself when the connection is lost (backoff doubling from 50 ms to
    /// [`SUBSCRIBER_MAX_BACKOFF`]) and then calls `on_event(RemoteEvent::Resync)`: events may
    /// have been missed. `on_event` runs on that thread: it should be quick.
    ///
    /// Returns once subscribed (events published after that are delivered); errors with
    /// [`TierError::Remote`] when the server cannot be reached within about the timeouts.
    pub fn subscribe(&self, on_event: impl Fn(RemoteEvent) + Send + Sync + 'static) -> Result<Subscription, TierError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let subscriber = Subscriber {
            connector: Arc::clone(&self.connector),
            channel: self.names.channel.clone(),
            origin: self.origin,
            redactor: Arc::clone(&self.redactor),
            stop: Arc::clone(&stop),
        };
        let poll = subscriber.poll();
        let thread = std::thread::Builder::new()
            .name("pw-cache-redis-events".to_owned())
            .spawn(move || subscriber.run(&on_event, ready_tx))
            .map_err(|e| TierError::Remote {
                op: "subscribe",
                reason: format!("cannot start the subscriber thread: {e}"),
            })?;
        let subscription = Subscription {
            stop,
            thread: Some(thread),
        };
        let patience = self.connector.connect_timeout + self.connector.command_timeout * 2 + poll;
        match ready_rx.recv_timeout(patience) {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TierError::Remote {
                op: "subscribe",
                reason: format!("not subscribed within {patience:?}"),
            }),
        }
    }

    /// Writes the get hits noted for LRU/LFU so far (also done by itself every
    /// [`TOUCH_BATCH`] hits and before an eviction).
    pub fn flush(&self) -> Result<(), TierError> {
        self.health.observe(self.flush_touches())
    }

    /// Writes pending hits and closes the pool. Later operations fail with
    /// [`TierError::Closed`]; closing again does nothing. Dropping the tier closes it too.
    pub fn close(&self) -> Result<(), TierError> {
        let open = self.pool.read().unwrap_or_else(PoisonError::into_inner).is_some();
        let flushed = if open { self.flush_touches() } else { Ok(()) };
        drop(self.pool.write().unwrap_or_else(PoisonError::into_inner).take());
        flushed
    }

    fn new_pool(&self) -> RedisPool {
        Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(self.connector.connect_timeout)
            .error_handler(Box::new(QuietErrors {
                redactor: Arc::clone(&self.redactor),
            }))
            .build_unchecked(ConnectorRef(Arc::clone(&self.connector)))
    }

    fn closed(&self) -> TierError {
        TierError::Closed {
            path: PathBuf::from(format!("redis {}", self.names.prefix.trim_end_matches(':'))),
        }
    }

    fn remote(&self, op: &'static str, e: &dyn fmt::Display) -> TierError {
        TierError::Remote {
            op,
            reason: self.redactor.clean(&e.to_string()),
        }
    }

    /// Runs `f` on a pooled connection. A connection that fails is dropped; when a connection
    /// that served before is found dead (the server restarted since), `f` runs again on
    /// another, up to the pool's size. `WRONGTYPE` on `key` makes that entry corrupt.
    fn run<T>(
        &self,
        op: &'static str,
        key: Option<&str>,
        mut f: impl FnMut(&mut redis::Connection) -> RedisResult<T>,
    ) -> Result<T, TierError> {
        let pool = self
            .pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.closed())?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut conn = pool.get().map_err(|e| self.remote(op, &e))?;
            let reused = conn.uses > 0;
            conn.uses += 1;
            match f(&mut conn.conn) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !connection_survives(&e) {
                        conn.broken = true;
                    }
                    if reused && e.is_connection_dropped() && attempts <= self.pool_size {
                        tracing::debug!(op, "retrying on a new connection: a pooled one was dead");
                        continue;
                    }
                    if e.code() == Some(INDEX_DAMAGED_CODE) {
                        return Err(self.index_damaged(false));
                    }
                    if let Some(key) = key
                        && e.code() == Some("WRONGTYPE")
                    {
                        return Err(TierError::Corrupt {
                            key: key.to_owned(),
                            reason: "its Redis key holds a value of another type".to_owned(),
                        });
                    }
                    return Err(self.remote(op, &e));
                }
            }
        }
    }

    /// Runs `script` with the namespace's keys and common arguments, then `args`. A script
    /// that found the indexes damaged ran nothing: they are rebuilt
    /// ([`RedisL3Tier::rebuild_index`]) and it runs once more.
    fn script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        args: &[&str],
    ) -> Result<T, TierError> {
        match self.script_once(op, script, args) {
            Err(TierError::Schema { .. }) => {
                tracing::warn!(prefix = %self.names.prefix, op, "the Redis L3 indexes are damaged: rebuilding them");
                self.rebuild_index_inner()?;
                match self.script_once(op, script, args) {
                    Err(TierError::Schema { .. }) => Err(self.index_damaged(true)),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn script_once<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        args: &[&str],
    ) -> Result<T, TierError> {
        self.run(op, None, |c| self.invocation(script, args).invoke(c))
    }

    /// The error of damaged indexes (`after_rebuild`: still damaged after a rebuild).
    fn index_damaged(&self, after_rebuild: bool) -> TierError {
        TierError::Schema {
            path: PathBuf::from(format!("redis {}", self.names.prefix.trim_end_matches(':'))),
            reason: if after_rebuild {
                "its indexes (idx, exp, ins) are still damaged after a rebuild".to_owned()
            } else {
                "its indexes (idx, exp, ins) are damaged: a key of another type, or sets out of step".to_owned()
            },
        }
    }

    fn invocation<'s>(&self, script: &'s Script, args: &[&str]) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        let n = &self.names;
        inv.key(&n.idx)
            .key(&n.exp)
            .key(&n.ins)
            .key(&n.seq)
            .key(&n.hid)
            .arg(&n.prefix)
            .arg(format!("{:016x}", self.origin));
        for a in args {
            inv.arg(*a);
        }
        inv
    }

    fn policy_arg(&self) -> &'static str {
        self.policy.as_str()
    }

    /// The hash of `key` (only `fields`; none: every field of an entry), read by the read
    /// script: nothing longer than its limit is transferred. `Ok(None)` when there is none; an
    /// unreadable one is [`TierError::Corrupt`].
    fn read_hash(&self, op: &'static str, key: &str, fields: &[&str]) -> Result<Option<Vec<Vec<u8>>>, TierError> {
        let name = self.names.entry(key);
        let value: redis::Value = self.run(op, Some(key), |c| {
            let mut inv = SCRIPTS.read.prepare_invoke();
            inv.key(&name);
            for field in fields {
                inv.arg(*field);
            }
            inv.invoke(c)
        })?;
        match Stored::parse(value) {
            Some(Stored::Absent) => Ok(None),
            Some(Stored::Fields(flat)) => Ok(Some(flat)),
            Some(Stored::Unreadable(reason)) => {
                let e = TierError::Corrupt {
                    key: key.to_owned(),
                    reason,
                };
                tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
                Err(e)
            }
            None => Err(TierError::Remote {
                op,
                reason: "unexpected reply from the read script".to_owned(),
            }),
        }
    }

    fn peek_inner(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let Some(flat) = self.read_hash("read entry", key, &[])? else {
            return Ok(None);
        };
        Fields::new(key, &flat).entry(&self.ring).map(Some).inspect_err(|e| {
            tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
        })
    }

    fn get_inner(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let Some(entry) = self.peek_inner(key)? else {
            return Ok(None);
        };
        if let Some(touches) = &self.touches
            && let Some(batch) = touches.record(key, to_unix_seconds(timestamp::now_utc()))
            && let Err(e) = self.write_touches(batch)
        {
            // Hits only order evictions: losing a batch of them is not worth failing a get.
            tracing::warn!(prefix = %self.names.prefix, error = %e, "could not record cache hits");
        }
        Ok(Some(entry))
    }

    fn touch_args(batch: &HashMap<String, Touch>) -> Vec<String> {
        let mut args = Vec::with_capacity(batch.len() * 3);
        for (key, t) in batch {
            args.extend([key.clone(), real(t.last), t.hits.min(i64::MAX as u64).to_string()]);
        }
        args
    }

    fn write_touches(&self, batch: HashMap<String, Touch>) -> Result<(), TierError> {
        if batch.is_empty() {
            return Ok(());
        }
        let args = Self::touch_args(&batch);
        let policy = self.policy_arg();
        let mut all: Vec<&str> = vec![policy];
        all.extend(args.iter().map(String::as_str));
        self.script::<i64>("record hits", &SCRIPTS.touch, &all).map(drop)
    }

    fn flush_touches(&self) -> Result<(), TierError> {
        match &self.touches {
            Some(touches) => self.write_touches(touches.take()),
            None => Ok(()),
        }
    }

    fn put_inner(&self, entry: &CacheEntry) -> Result<(), TierError> {
        let fields = entry_fields(entry, &self.ring)?;
        if let Some(touches) = &self.touches {
            touches.forget(&entry.key);
        }
        let now = real(to_unix_seconds(timestamp::now_utc()));
        let max = self.max_entries.map(|m| m.to_string()).unwrap_or_default();
        let expire_ms = unix_millis_ceil(entry.expires_at).to_string();
        let expires_at = real(to_unix_seconds(entry.expires_at));
        let last_accessed = real(to_unix_seconds(entry.last_accessed));
        let access_count = entry.access_count.to_string();
        let divisor = EVICTION_BATCH_DIVISOR.to_string();
        let policy = self.policy_arg();
        let mut batch: Option<HashMap<String, Touch>> = None;
        // Hits applied by an earlier round (the script applies them before it asks which
        // entries to evict): never restored afterwards.
        let mut touches_applied = false;
        // First: ask for candidates (this many beyond the entries needed) when eviction is due;
        // then: the readable ones, with the version read.
        let mut want: usize = 8;
        let mut verified: Option<Vec<(String, String)>> = None;
        // Only unreadable entries are left to evict: store above the bound.
        let mut over = false;
        // Evicted by earlier rounds.
        let mut evicted_before = 0;
        let result = loop {
            let touch_args = batch.as_ref().map(Self::touch_args).unwrap_or_default();
            // First round: whether hits are pending (the script asks for them when it must
            // evict); second round: the hits taken, if any.
            let has_touches = match &batch {
                None if self.touches.as_ref().is_some_and(|t| !t.is_empty()) => "1",
                Some(_) if !touch_args.is_empty() => "1",
                _ => "0",
            };
            let ntouch = (touch_args.len() / 3).to_string();
            let nfields = fields.len().to_string();
            let (want_arg, nverified) = match &verified {
                Some(list) => ("0".to_owned(), list.len().to_string()),
                None => (want.to_string(), "0".to_owned()),
            };
            let mut args: Vec<&str> = vec![
                &entry.key,
                &max,
                policy,
                &divisor,
                &expire_ms,
                &expires_at,
                &now,
                &last_accessed,
                &access_count,
                has_touches,
                &ntouch,
            ];
            args.extend(touch_args.iter().map(String::as_str));
            args.push(&nfields);
            for (name, value) in &fields {
                args.push(name);
                args.push(value);
            }
            args.push(&want_arg);
            args.push(&nverified);
            for (key, stamp) in verified.iter().flatten() {
                args.push(key);
                args.push(stamp);
            }
            args.push(if over { "1" } else { "0" });
            let reply: Result<redis::Value, TierError> = self.script("write entry", &SCRIPTS.put, &args);
            match reply.and_then(|value| PutReply::parse(&value)) {
                Ok(PutReply::SendHits) if batch.is_none() => {
                    batch = Some(self.touches.as_ref().map(Touches::take).unwrap_or_default());
                }
                Ok(PutReply::Candidates {
                    need,
                    touched,
                    evicted,
                    candidates,
                }) => {
                    evicted_before += evicted;
                    if verified.take().is_some() {
                        // Round two found the tier full again: start over with these.
                        want = 8;
                    }
                    if touched {
                        // Applied: not sent again, never restored.
                        touches_applied = true;
                        batch = Some(HashMap::new());
                    }
                    let (chosen, skipped) = self.readable_victims(&candidates, need);
                    if chosen.len() < need && candidates.len() >= need.saturating_add(want) {
                        // Unreadable entries took places: look further down the order.
                        want = want.saturating_mul(4).saturating_add(need);
                        continue;
                    }
                    if skipped > 0 {
                        self.unreadable_skipped.fetch_add(skipped, Ordering::Relaxed);
                        if chosen.len() < need && !self.over_bound_warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                prefix = %self.names.prefix,
                                unreadable = skipped,
                                "Redis L3 above max_entries: the entries left to evict are unreadable, and \
                                 unreadable entries are never evicted (remove them explicitly if they are garbage)"
                            );
                        }
                    }
                    over = chosen.len() < need;
                    verified = Some(chosen);
                }
                Ok(PutReply::Done { evicted, touched }) => {
                    let evicted = evicted + evicted_before;
                    if !touched
                        && !touches_applied
                        && let (Some(b), Some(touches)) = (batch.take(), &self.touches)
                    {
                        touches.restore(b);
                    }
                    break Ok(evicted);
                }
                Ok(other) => {
                    break Err(TierError::Remote {
                        op: "write entry",
                        reason: format!("unexpected script reply {other:?}"),
                    });
                }
                Err(e) => {
                    if !touches_applied && let (Some(b), Some(touches)) = (batch.take(), &self.touches) {
                        touches.restore(b);
                    }
                    break Err(e);
                }
            }
        };
        let evicted = result?;
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
            tracing::debug!(prefix = %self.names.prefix, evicted, "evicted cache entries");
        }
        Ok(())
    }

    /// The first `need` candidates (key, hash) that can be read, with the `updated_at` read
    /// (an index entry without its hash is taken with an empty one: the script drops it from
    /// the index); how many were skipped as unreadable (damaged, too long, naming another key).
    fn readable_victims(&self, candidates: &[(String, Stored)], need: usize) -> (Vec<(String, String)>, u64) {
        let mut chosen = Vec::with_capacity(need);
        let mut skipped = 0;
        for (key, stored) in candidates {
            if chosen.len() == need {
                break;
            }
            let flat = match stored {
                Stored::Absent => {
                    chosen.push((key.clone(), String::new()));
                    continue;
                }
                Stored::Unreadable(_) => {
                    skipped += 1;
                    continue;
                }
                Stored::Fields(flat) => flat,
            };
            let hash = Fields::new(key, flat);
            match hash.entry(&self.ring) {
                Ok(_) => {
                    let stamp = hash.optional_text("updated_at").ok().flatten().unwrap_or_default();
                    chosen.push((key.clone(), stamp));
                }
                Err(_) => skipped += 1,
            }
        }
        (chosen, skipped)
    }

    /// Up to `limit` stored credential tokens, from the entries first in the index. Entries
    /// whose hash names another key, or holds a field longer than its limit, give none.
    fn credential_sample_inner(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // (Capped: Lua reads it as a double.)
        let limit_arg = limit.min(1 << 30).to_string();
        let keys: Vec<String> = self.script("sample credentials", &SCRIPTS.keys, &[&limit_arg])?;
        let mut tokens = Vec::new();
        for key in keys {
            const TOKENS: [&str; 2] = ["username_encrypted", "password_encrypted"];
            let flat = match self.read_hash("sample credentials", &key, &["key", TOKENS[0], TOKENS[1]]) {
                Ok(Some(flat)) => flat,
                Ok(None) => continue,
                Err(e) if e.is_corrupt_entry() => continue,
                Err(e) => return Err(e),
            };
            let hash = Fields::new(&key, &flat);
            if hash.check_key().is_err() {
                continue;
            }
            for token in TOKENS.into_iter().filter_map(|field| hash.token(field)) {
                if tokens.len() < limit {
                    tokens.push(token.to_vec());
                }
            }
            if tokens.len() >= limit {
                break;
            }
        }
        Ok(tokens)
    }

    fn delete_if_unchanged_since_inner(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let since = real(to_unix_seconds(since));
        let removed: i64 = self.script("delete entry", &SCRIPTS.delete_since, &[key, &since])?;
        Ok(removed > 0)
    }

    fn clear_unchanged_since_inner(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            touches.take();
        }
        let since = real(to_unix_seconds(since));
        let chunk = SCRIPT_CHUNK.to_string();
        let (mut removed, mut offset) = (0usize, 0usize);
        loop {
            let from = offset.to_string();
            let (n, kept, seen): (i64, i64, i64) =
                self.script("clear entries", &SCRIPTS.clear_since, &[&since, &chunk, &from])?;
            removed += usize::try_from(n).unwrap_or(0);
            offset += usize::try_from(kept).unwrap_or(0);
            if seen < SCRIPT_CHUNK as i64 {
                return Ok(removed);
            }
        }
    }

    fn delete_inner(&self, key: &str) -> Result<bool, TierError> {
        if let Some(touches) = &self.touches {
            touches.forget(key);
        }
        let existed: i64 = self.script("delete entry", &SCRIPTS.delete, &[key])?;
        Ok(existed > 0)
    }

    fn clear_inner(&self) -> Result<usize, TierError> {
        if let Some(touches) = &self.touches {
            touches.take();
        }
        // In chunks, so that no script runs near the command timeout; the last one publishes
        // the clear. Entries put by others meanwhile may be removed too, as by one clear after.
        let chunk = SCRIPT_CHUNK.to_string();
        let mut removed = 0;
        loop {
            let (n, left): (i64, i64) = self.script("clear entries", &SCRIPTS.clear, &[&chunk])?;
            removed += usize::try_from(n).unwrap_or(0);
            if left == 0 {
                return Ok(removed);
            }
        }
    }

    fn keys_inner(&self) -> Result<Vec<String>, TierError> {
        let raw: Vec<Vec<u8>> = self.script("list keys", &SCRIPTS.keys, &[])?;
        Ok(raw
            .into_iter()
            .filter_map(|k| {
                String::from_utf8(k)
                    .inspect_err(|_| tracing::warn!(prefix = %self.names.prefix, "skipped a key that is not UTF-8"))
                    .ok()
            })
            .collect())
    }

    fn record_accesses_inner(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        if records.is_empty() {
            return Ok(0);
        }
        if records.len() > RECORD_CHUNK {
            // One script per chunk, so that none runs near the command timeout (a use record
            // stands alone: the batch need not be atomic as a whole).
            let mut changed = 0;
            for chunk in records.chunks(RECORD_CHUNK) {
                changed += self.record_accesses_inner(chunk)?;
            }
            return Ok(changed);
        }
        let updated_at = real(to_unix_seconds(timestamp::now_utc()));
        let policy = self.policy_arg();
        let mut values = Vec::with_capacity(records.len() * 3);
        for r in records {
            values.extend([
                r.access_count.min(i64::MAX as u64).to_string(),
                real(to_unix_seconds(r.last_accessed)),
                if r.evicted_from_l1 { "1" } else { "0" }.to_owned(),
            ]);
        }
        let mut args: Vec<&str> = vec![policy, &updated_at];
        for (r, v) in records.iter().zip(values.chunks_exact(3)) {
            args.extend([r.key.as_str(), &v[0], &v[1], &v[2]]);
        }
        let n: i64 = self.script("record uses", &SCRIPTS.record_uses, &args)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn health_detail_inner(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        let mut fields = vec!["key"];
        fields.extend(HEALTH_FIELDS);
        let Some(flat) = self.read_hash("read health detail", key, &fields)? else {
            return Ok(None);
        };
        let hash = Fields::new(key, &flat);
        hash.check_key()?;
        hash.health_detail().map(Some)
    }

    fn probe_inner(&self) -> Result<(), TierError> {
        // Connections made while the server was away are dead: probe, and serve, with new ones.
        {
            let mut pool = self.pool.write().unwrap_or_else(PoisonError::into_inner);
            if pool.is_none() {
                return Err(self.closed());
            }
            *pool = Some(self.new_pool());
        }
        let probe = &self.names.probe;
        let origin = format!("{:016x}", self.origin);
        self.run("probe", None, |c| {
            redis::cmd("PING").query::<()>(c)?;
            redis::cmd("SET")
                .arg(probe)
                .arg(&origin)
                .arg("PX")
                .arg(60_000)
                .query::<()>(c)?;
            redis::cmd("DEL").arg(probe).query::<()>(c)
        })
    }

    fn record_check_inner(&self, check: &HealthCheck) -> Result<i64, TierError> {
        check.validate()?;
        let json = serde_json::to_string(&CheckJson {
            proxy_key: &check.proxy_key,
            check_time: to_unix_seconds(check.check_time),
            status: check.status.as_str(),
            response_time_ms: check.response_time_ms,
            error_message: check.error_message.as_deref(),
            check_url: &check.check_url,
        })
        .map_err(|e| TierError::InvalidEntry {
            key: check.proxy_key.clone(),
            reason: format!("cannot encode the check: {e}"),
        })?;
        let rest = json.strip_prefix('{').unwrap_or(&json);
        let cap = self.history_cap.to_string();
        let id: i64 = self.script(
            "record health check",
            &SCRIPTS.record_check,
            &[&check.proxy_key, &cap, rest],
        )?;
        if id < 0 {
            return Err(TierError::InvalidEntry {
                key: check.proxy_key.clone(),
                reason: "no cache entry has this key: health history belongs to an entry".to_owned(),
            });
        }
        Ok(id)
    }

    fn history_inner(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let name = self.names.history(proxy_key);
        let items: Vec<redis::Value> = self.run("read health history", Some(proxy_key), |c| {
            SCRIPTS
                .read_history
                .prepare_invoke()
                .key(&name)
                .arg(limits::MAX_HEALTH_RECORD_BYTES)
                .invoke(c)
        })?;
        let mut records = items
            .iter()
            .map(|item| match item {
                redis::Value::BulkString(item) => read_check(proxy_key, item),
                redis::Value::Int(len) => Err(TierError::Corrupt {
                    key: proxy_key.to_owned(),
                    reason: format!(
                        "health history record: {len} bytes long, more than the limit of {} bytes",
                        limits::MAX_HEALTH_RECORD_BYTES
                    ),
                }),
                other => Err(TierError::Corrupt {
                    key: proxy_key.to_owned(),
                    reason: format!("health history record: not a string ({other:?})"),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| b.check.check_time.cmp(&a.check.check_time).then(b.id.cmp(&a.id)));
        records.truncate(limit);
        Ok(records)
    }

    fn rebuild_index_inner(&self) -> Result<usize, TierError> {
        const OP: &str = "rebuild index";
        let rebuild = &SCRIPTS.rebuild;
        self.script_once::<i64>(OP, rebuild, &["reset"])?;
        // Every entry key, with its created_at.
        let entry_prefix = format!("{}e:", self.names.prefix);
        let pattern = format!("{}*", glob_escape(&entry_prefix));
        let mut found: HashMap<String, f64> = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, names): (u64, Vec<Vec<u8>>) = self.run(OP, None, |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(c)
            })?;
            let keys: Vec<String> = names
                .iter()
                .filter_map(|name| name.strip_prefix(entry_prefix.as_bytes()))
                .filter_map(|key| {
                    std::str::from_utf8(key)
                        .inspect_err(|_| {
                            tracing::warn!(prefix = %self.names.prefix, "an entry key that is not UTF-8 is left out of the index");
                        })
                        .ok()
                })
                .map(str::to_owned)
                .collect();
            if !keys.is_empty() {
                let mut args = vec!["stamps"];
                args.extend(keys.iter().map(String::as_str));
                let stamps: Vec<String> = self.script_once(OP, rebuild, &args)?;
                for (key, stamp) in keys.into_iter().zip(stamps) {
                    found.insert(key, stamp.parse().unwrap_or(0.0));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut ordered: Vec<(f64, String)> = found.into_iter().map(|(key, at)| (at, key)).collect();
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let policy = self.policy_arg();
        let mut indexed = 0;
        for chunk in ordered.chunks(SCRIPT_CHUNK) {
            let mut args = vec!["add", policy];
            args.extend(chunk.iter().map(|(_, key)| key.as_str()));
            let n: i64 = self.script_once(OP, rebuild, &args)?;
            indexed += usize::try_from(n).unwrap_or(0);
        }
        // Index members without an entry.
        let mut members: std::collections::HashSet<String> = std::collections::HashSet::new();
        for index in [&self.names.idx, &self.names.exp, &self.names.ins] {
            let mut cursor: u64 = 0;
            loop {
                let (next, pairs): (u64, Vec<Vec<u8>>) = self.run(OP, None, |c| {
                    redis::cmd("ZSCAN")
                        .arg(index)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query(c)
                })?;
                members.extend(
                    pairs
                        .into_iter()
                        .step_by(2)
                        .filter_map(|member| String::from_utf8(member).ok()),
                );
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let members: Vec<String> = members.into_iter().collect();
        let mut dropped = 0;
        for chunk in members.chunks(SCRIPT_CHUNK) {
            let mut args = vec!["drop"];
            args.extend(chunk.iter().map(String::as_str));
            let n: i64 = self.script_once(OP, rebuild, &args)?;
            dropped += usize::try_from(n).unwrap_or(0);
        }
        let n: i64 = self.script_once(OP, rebuild, &["finish"])?;
        tracing::warn!(
            prefix = %self.names.prefix,
            entries = n,
            found = indexed,
            dropped,
            "rebuilt the Redis L3 indexes from the entry hashes"
        );
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn prune_history_inner(&self, older_than: OffsetDateTime) -> Result<usize, TierError> {
        let keys = self.keys_inner()?;
        let older = real(to_unix_seconds(older_than));
        let mut pruned = 0;
        for chunk in keys.chunks(PRUNE_CHUNK) {
            let mut args: Vec<&str> = vec![&older];
            args.extend(chunk.iter().map(String::as_str));
            let n: i64 = self.script("prune health history", &SCRIPTS.prune_history, &args)?;
            pruned += usize::try_from(n).unwrap_or(0);
        }
        Ok(pruned)
    }
}

/// The pool's manager: the tier's connector (shared with the event subscriber and with the
/// pools a probe makes).
struct ConnectorRef(Arc<Connector>);

impl ManageConnection for ConnectorRef {
    type Connection = PooledConn;
    type Error = RedisError;

    fn connect(&self) -> RedisResult<PooledConn> {
        Ok(PooledConn {
            conn: self.0.connect_raw()?,
            broken: false,
            uses: 0,
        })
    }

    fn is_valid(&self, conn: &mut PooledConn) -> RedisResult<()> {
        redis::cmd("PING").query::<()>(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        conn.broken || !conn.conn.is_open()
    }
}

impl Drop for RedisL3Tier {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(prefix = %self.names.prefix, error = %e, "closing the Redis tier failed");
        }
    }
}

impl CacheTier for RedisL3Tier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L3
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.health.observe(self.get_inner(key))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.health.observe(self.peek_inner(key))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.health.observe(self.put_inner(entry))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.health.observe(self.delete_inner(key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.health.observe(self.clear_inner())
    }

    fn size(&self) -> Result<usize, TierError> {
        let n: Result<i64, TierError> = self.script("count entries", &SCRIPTS.size, &[]);
        self.health.observe(n.map(|n| usize::try_from(n).unwrap_or(0)))
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.health.observe(self.keys_inner())
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        let name = self.names.entry(key);
        self.health
            .observe(self.run("look up key", None, |c| redis::cmd("EXISTS").arg(&name).query(c)))
    }

    /// Removes the readable entries expired at `now`, in chunks: each chunk's entries are read
    /// by one script, checked here, and the readable ones removed by a second script if still
    /// at the version read. Unreadable entries are left in place and counted.
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = real(to_unix_seconds(now));
        let chunk = SCRIPT_CHUNK.to_string();
        let mut removed = 0;
        // Entries left in the expired range (unreadable, or changed meanwhile): skipped over.
        let mut offset = 0usize;
        let outcome = loop {
            let offset_arg = offset.to_string();
            let asked = self
                .script::<redis::Value>(
                    "delete expired entries",
                    &SCRIPTS.cleanup,
                    &[&now, &chunk, &offset_arg, "ask"],
                )
                .and_then(|value| ExpiredChunk::parse(&value));
            let chunk_read = match asked {
                Ok(chunk_read) => chunk_read,
                Err(e) => break Err(e),
            };
            let (readable, skipped) = self.readable_victims(&chunk_read.entries, chunk_read.entries.len());
            self.unreadable_skipped.fetch_add(skipped, Ordering::Relaxed);
            let mut deleted = 0;
            if !readable.is_empty() {
                let mut args: Vec<&str> = vec![&now, &chunk, &offset_arg, "del"];
                for (key, stamp) in &readable {
                    args.push(key);
                    args.push(stamp);
                }
                match self.script::<i64>("delete expired entries", &SCRIPTS.cleanup, &args) {
                    Ok(n) => deleted = usize::try_from(n).unwrap_or(0),
                    Err(e) => break Err(e),
                }
            }
            removed += deleted;
            offset += chunk_read.entries.len().saturating_sub(deleted);
            if chunk_read.seen < SCRIPT_CHUNK {
                break Ok(removed);
            }
        };
        self.health.observe(outcome)
    }

    fn health(&self) -> &TierHealth {
        &self.health
    }

    /// One script for the whole batch.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.health.observe(self.record_accesses_inner(records))
    }

    /// A read (checked readable), then one script that increments, decides and publishes, and
    /// refuses when the entry changed since the read, then reads again (`docs/formats.md`,
    /// "Health marks").
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.health.observe(self.mark_failure_inner(key, evict_at))
    }

    /// A read (checked readable), then one script that writes the re-encrypted tokens only if
    /// the stored ones are still those read.
    fn rotate_credentials(&self, key: &str) -> Result<crate::Rotated, TierError> {
        self.health.observe(self.rotate_credentials_inner(key))
    }

    /// Reads the eight fields alone (no credential is decrypted).
    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        self.health.observe(self.health_detail_inner(key))
    }

    fn evictions(&self) -> u64 {
        RedisL3Tier::evictions(self)
    }

    fn unreadable_skipped(&self) -> u64 {
        self.unreadable_skipped.load(Ordering::Relaxed)
    }

    /// One script: compares the hash's `updated_at` and removes it if not newer.
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        self.health.observe(self.delete_if_unchanged_since_inner(key, since))
    }

    /// In chunks of the index, each one script.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        self.health.observe(self.clear_unchanged_since_inner(since))
    }

    /// The credentials of the entries first in the index.
    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.health.observe(self.credential_sample_inner(limit))
    }

    fn flush(&self) -> Result<(), TierError> {
        RedisL3Tier::flush(self)
    }

    fn close(&self) -> Result<(), TierError> {
        RedisL3Tier::close(self)
    }

    /// `PING`, then a write and a delete of `pwc:{ns}:probe`, on new connections.
    fn probe(&self) -> Result<(), TierError> {
        self.health.observe(self.probe_inner())
    }
}

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
const MARK_FAILURE_LUA: &str = concat!(
    lua_common!(),
    r#"
local key = ARGV[3]
local ek = ekey(key)
local ty = redis.call('TYPE', ek)['ok']
if ty == 'none' then return {0} end
if ty ~= 'hash' or (redis.call('HGET', ek, 'updated_at') or '') ~= ARGV[4] then return {3} end
local n = redis.pcall('HINCRBY', ek, 'failure_count', 1)
if type(n) ~= 'number' then return {4} end
if ARGV[5] ~= '' and n >= tonumber(ARGV[5]) then
  forget(key)
  publish('del', key)
  return {2, n}
end
redis.call('HSET', ek, 'health_status', 'unhealthy')
publish('put', key)
return {1, n}
"#
);

/// ARGV: 3 key, 4 username token read ('' none), 5 its replacement, 6 password token read,
/// 7 its replacement. Writes the replacements only if the hash still holds the tokens read.
/// Returns 1 (rewritten), 0 (the tokens changed meanwhile: read again), -1 (no entry). Nothing
/// else is written (`updated_at` included) and nothing is published: the credentials are the
/// same, only their encryption changed.
const ROTATE_LUA: &str = concat!(
    lua_common!(),
    r#"
local ek = ekey(ARGV[3])
if redis.call('TYPE', ek)['ok'] ~= 'hash' then return -1 end
if (redis.call('HGET', ek, 'username_encrypted') or '') ~= ARGV[4] then return 0 end
if (redis.call('HGET', ek, 'password_encrypted') or '') ~= ARGV[6] then return 0 end
if ARGV[5] ~= '' then redis.call('HSET', ek, 'username_encrypted', ARGV[5]) end
if ARGV[7] ~= '' then redis.call('HSET', ek, 'password_encrypted', ARGV[7]) end
return 1
"#
);

/// The rotation script, hashed once (beside [`SCRIPTS`], not in it).
static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE_LUA));

/// The health-mark script, hashed once (beside [`SCRIPTS`], not in it).
static MARK_FAILURE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MARK_FAILURE_LUA));

/// Reads and scripts a health mark tries before giving up, when the entry changes (a put or a
/// recorded use by another host) between each read and its script.
const MARK_ATTEMPTS: usize = 32;

impl RedisL3Tier {
    /// [`CacheTier::mark_failure`]: reads the entry (`HGETALL`), checks that it can be read
    /// (every field, every token: an unreadable entry is left untouched and reported as a
    /// lookup reports it), then runs [`MARK_FAILURE_LUA`] with the `updated_at` read, which
    /// refuses if the entry changed in between; then reads and tries again, up to
    /// [`MARK_ATTEMPTS`] times.
    fn mark_failure_inner(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let name = self.names.entry(key);
        let evict_at = evict_at.map(|n| n.to_string()).unwrap_or_default();
        for _ in 0..MARK_ATTEMPTS {
            let flat: Vec<Vec<u8>> =
                self.run("read entry", Some(key), |c| redis::cmd("HGETALL").arg(&name).query(c))?;
            if flat.is_empty() {
                return Ok(FailureMark::Absent);
            }
            let hash = Fields::new(key, &flat);
            // The decrypted entry is dropped (zeroized) at once: only its readability matters.
            if let Err(e) = hash.entry(&self.ring) {
                tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
                return Err(e);
            }
            let stamp = hash.optional_text("updated_at").ok().flatten().unwrap_or_default();
            let reply: Vec<i64> = self.script("mark failure", &MARK_FAILURE_SCRIPT, &[key, &stamp, &evict_at])?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            match reply.as_slice() {
                [0] => return Ok(FailureMark::Absent),
                [1, n] => {
                    return Ok(FailureMark::Marked {
                        failure_count: count(*n),
                    });
                }
                [2, n] => {
                    if let Some(touches) = &self.touches {
                        touches.forget(key);
                    }
                    return Ok(FailureMark::Evicted {
                        failure_count: count(*n),
                    });
                }
                // Changed since the read: read it again.
                [3] => {}
                [4] => {
                    return Err(TierError::InvalidEntry {
                        key: key.to_owned(),
                        reason: "failure_count is not an integer Redis can increment (or is at its maximum)".to_owned(),
                    });
                }
                _ => {
                    return Err(TierError::Remote {
                        op: "mark failure",
                        reason: format!("unexpected reply from the mark script: {reply:?}"),
                    });
                }
            }
        }
        Err(TierError::Remote {
            op: "mark failure",
            reason: format!("the entry changed between the read and the mark {MARK_ATTEMPTS} times in a row"),
        })
    }
}

impl RedisL3Tier {
    /// [`CacheTier::rotate_credentials`]: reads the entry (checked readable), re-encrypts its
    /// tokens here, and writes them with [`ROTATE_LUA`] only if the stored ones are still those
    /// read; else reads again (up to [`MARK_ATTEMPTS`] times).
    fn rotate_credentials_inner(&self, key: &str) -> Result<crate::Rotated, TierError> {
        let name = self.names.entry(key);
        for _ in 0..MARK_ATTEMPTS {
            let flat: Vec<Vec<u8>> =
                self.run("read entry", Some(key), |c| redis::cmd("HGETALL").arg(&name).query(c))?;
            if flat.is_empty() {
                return Ok(crate::Rotated::Absent);
            }
            let hash = Fields::new(key, &flat);
            drop(hash.entry(&self.ring)?);
            let (username, password) = (hash.token("username_encrypted"), hash.token("password_encrypted"));
            if username.is_none() && password.is_none() {
                return Ok(crate::Rotated::NoCredentials);
            }
            let rotate = |token: Option<&[u8]>| -> Result<(String, String), TierError> {
                let Some(bytes) = token else {
                    return Ok((String::new(), String::new()));
                };
                let rotated = self.ring.rotate_bytes(bytes).map_err(|source| TierError::Crypto {
                    key: key.to_owned(),
                    source,
                })?;
                Ok((
                    String::from_utf8_lossy(bytes).into_owned(),
                    String::from_utf8_lossy(&rotated).into_owned(),
                ))
            };
            let ((old_user, new_user), (old_pass, new_pass)) = (rotate(username)?, rotate(password)?);
            let done: i64 = self.script(
                "rotate credentials",
                &ROTATE_SCRIPT,
                &[key, &old_user, &new_user, &old_pass, &new_pass],
            )?;
            match done {
                1 => return Ok(crate::Rotated::Rewritten),
                -1 => return Ok(crate::Rotated::Absent),
                _ => {}
            }
        }
        Err(TierError::Remote {
            op: "rotate credentials",
            reason: format!("the entry's credentials changed between the read and the write {MARK_ATTEMPTS} times"),
        })
    }
}

impl HealthHistory for RedisL3Tier {
    /// One script: checks the entry exists, takes an id, pushes the record, trims the list to
    /// the cap, gives it the entry's expiry, publishes `health`.
    fn record_health_check(&self, check: &HealthCheck) -> Result<i64, TierError> {
        self.health.observe(self.record_check_inner(check))
    }

    fn health_history(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError> {
        self.health.observe(self.history_inner(proxy_key, limit))
    }

    /// One script per 256 entries.
    fn prune_health_history(&self, older_than: OffsetDateTime) -> Result<usize, TierError> {
        self.health.observe(self.prune_history_inner(older_than))
    }
}

/// What changed an entry, in a [`RemoteEvent::Changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The entry was stored (new or replaced; a put of an entry already expired removes it),
    /// or marked by a failed health check below its threshold.
    Put,
    /// The entry was deleted (whether it was there or not).
    Delete,
    /// A health check of the entry was recorded.
    Health,
}

/// A change published by another tier instance on the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEvent {
    /// The entry under `key` changed: copies of it in upper tiers are stale.
    Changed {
        /// The entry's key.
        key: String,
        /// What changed it.
        kind: ChangeKind,
    },
    /// Every entry was removed.
    Cleared,
    /// The subscriber reconnected after losing its connection: events may have been missed,
    /// so any copy may be stale.
    Resync,
}

/// Reads one event message; `None` for a message of `own` origin or one that is not an event.
fn parse_event(payload: &[u8], own: u64) -> Option<RemoteEvent> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, ' ');
    let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
    if origin == own {
        return None;
    }
    let kind = parts.next()?;
    let key = parts.next()?;
    let kind = match kind {
        "clear" => return Some(RemoteEvent::Cleared),
        "put" => ChangeKind::Put,
        "del" => ChangeKind::Delete,
        "health" => ChangeKind::Health,
        _ => return None,
    };
    Some(RemoteEvent::Changed {
        key: key.to_owned(),
        kind,
    })
}

/// The background thread of a [`Subscription`].
struct Subscriber {
    connector: Arc<Connector>,
    channel: String,
    origin: u64,
    redactor: Arc<Redactor>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// How long one read waits before the thread looks at the stop flag.
    fn poll(&self) -> Duration {
        self.connector
            .command_timeout
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn run(self, on_event: &(dyn Fn(RemoteEvent) + Send + Sync), ready: mpsc::Sender<Result<(), TierError>>) {
        let mut ready = Some(ready);
        let mut backoff = SUBSCRIBER_MIN_BACKOFF;
        while !self.stopped() {
            match self.connector.connect_raw() {
                Ok(mut conn) => {
                    let mut pubsub = conn.as_pubsub();
                    match pubsub
                        .subscribe(&self.channel)
                        .and_then(|()| pubsub.set_read_timeout(Some(self.poll())))
                    {
                        Ok(()) => {
                            backoff = SUBSCRIBER_MIN_BACKOFF;
                            match ready.take() {
                                Some(tx) => {
                                    let _ = tx.send(Ok(()));
                                }
                                None => {
                                    tracing::info!(channel = %self.channel, "resubscribed to cache events");
                                    deliver(on_event, RemoteEvent::Resync);
                                }
                            }
                            self.listen(&mut pubsub, on_event);
                        }
                        Err(e) => {
                            if self.fail_start(&mut ready, &e) {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    if self.fail_start(&mut ready, &e) {
                        return;
                    }
                }
            }
            // Wait before reconnecting, looking at the stop flag.
            let until = Instant::now() + backoff;
            while !self.stopped() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10).min(backoff));
            }
            backoff = (backoff * 2).min(SUBSCRIBER_MAX_BACKOFF);
        }
    }

    /// Reports a failure to subscribe: to the caller of `subscribe` the first time (then the
    /// thread ends: `true`), in the log afterwards.
    fn fail_start(&self, ready: &mut Option<mpsc::Sender<Result<(), TierError>>>, e: &RedisError) -> bool {
        let reason = self.redactor.clean(&e.to_string());
        match ready.take() {
            Some(tx) => {
                let _ = tx.send(Err(TierError::Remote {
                    op: "subscribe",
                    reason,
                }));
                true
            }
            None => {
                tracing::debug!(error = %reason, "cannot resubscribe to cache events yet");
                false
            }
        }
    }

    /// Delivers messages until the connection fails or the subscription stops.
    fn listen(&self, pubsub: &mut redis::PubSub<'_>, on_event: &(dyn Fn(RemoteEvent) + Send + Sync)) {
        let mut heard = Instant::now();
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(msg) => {
                    heard = Instant::now();
                    if let Some(event) = parse_event(msg.get_payload_bytes(), self.origin) {
                        deliver(on_event, event);
                    }
                }
                Err(e) if e.is_timeout() => {
                    if heard.elapsed() >= SUBSCRIBER_KEEPALIVE {
                        if let Err(e) = pubsub.ping::<redis::Value>() {
                            self.lost(&e);
                            return;
                        }
                        heard = Instant::now();
                    }
                }
                Err(e) => {
                    self.lost(&e);
                    return;
                }
            }
        }
    }

    fn lost(&self, e: &RedisError) {
        if !self.stopped() {
            tracing::warn!(
                channel = %self.channel,
                error = %self.redactor.clean(&e.to_string()),
                "lost the cache events connection; reconnecting"
            );
        }
    }
}

/// Calls `on_event`, containing a panic of it (the subscription goes on).
fn deliver(on_event: &(dyn Fn(RemoteEvent) + Send + Sync), event: RemoteEvent) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_event(event))).is_err() {
        tracing::error!("a cache event handler panicked");
    }
}

/// Delivery of a tier's events ([`RedisL3Tier::subscribe`]); dropping it stops the background
/// thread and waits for it (about the command timeout at most).
#[derive(Debug)]
pub struct Subscription {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the cache events thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    /// Without the `redis-tls` feature a `rediss://` URL is a typed error at open, before any
    /// connection, naming the feature.
    #[cfg(not(feature = "redis-tls"))]
    #[test]
    fn rediss_without_the_tls_feature_is_a_typed_error() {
        let options = RedisL3Options::new(Secret::new("rediss://:pw-not-shown@127.0.0.1:1"));
        let ring = Arc::new(KeyRing::new(pw_cache_crypto::FernetKey::generate(), []));
        let err = RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), ring).unwrap_err();
        assert!(matches!(err, TierError::Remote { .. }), "{err}");
        assert!(!err.to_string().contains("pw-not-shown"), "{err}");
    }

    use super::*;

    #[test]
    fn redactor_masks_url_userinfo_and_password() {
        let r = Redactor::new("redis://user:p%40ss@example.invalid:6379/2");
        let text = "failed redis://user:p%40ss@example.invalid:6379/2 with p@ss, p%40ss, user:p%40ss";
        assert_eq!(r.clean(text), "failed *** with ***, ***, ***");
        assert_eq!(r.clean("user_script:1"), "user_script:1", "a user name is no secret");
        let r = Redactor::new("redis://:sekrit@127.0.0.1:1/");
        assert_eq!(r.clean("x sekrit y"), "x *** y");
        assert_eq!(Redactor::new("redis://127.0.0.1:6379").clean("nothing"), "nothing");
    }

    #[test]
    fn options_debug_hides_the_url() {
        let o = RedisL3Options::new(Secret::new("redis://:sekrit@127.0.0.1:1"));
        let text = format!("{o:?}");
        assert!(!text.contains("sekrit") && !text.contains("127.0.0.1"), "{text}");
    }

    #[test]
    fn bad_options_are_refused() {
        let url = || Secret::new("redis://127.0.0.1:1");
        for o in [
            RedisL3Options::new(url()).with_namespace(""),
            RedisL3Options::new(url()).with_namespace("a}b"),
            RedisL3Options::new(url()).with_namespace("a b"),
            RedisL3Options::new(url()).with_pool_size(0),
            RedisL3Options::new(url()).with_history_cap(0),
            RedisL3Options::new(url()).with_command_timeout(Duration::ZERO),
        ] {
            assert!(matches!(o.check(), Err(TierError::Remote { .. })), "{o:?}");
        }
        assert!(RedisL3Options::new(url()).check().is_ok());
    }

    #[test]
    fn events_parse_and_skip_their_own_origin() {
        let me = 0xabc;
        assert_eq!(parse_event(b"0000000000000abc put k", me), None);
        assert_eq!(
            parse_event(b"00000000000000ff put a key with spaces", me),
            Some(RemoteEvent::Changed {
                key: "a key with spaces".to_owned(),
                kind: ChangeKind::Put
            })
        );
        assert_eq!(parse_event(b"ff clear -", me), Some(RemoteEvent::Cleared));
        assert_eq!(
            parse_event(b"ff health k", me),
            Some(RemoteEvent::Changed {
                key: "k".to_owned(),
                kind: ChangeKind::Health
            })
        );
        assert_eq!(parse_event(b"ff nonsense k", me), None);
        assert_eq!(parse_event(b"zz put k", me), None);
    }

    #[test]
    fn expiry_is_rounded_up_to_the_millisecond() {
        use time::macros::datetime;
        assert_eq!(unix_millis_ceil(datetime!(1970-01-01 00:00:01 UTC)), 1000);
        assert_eq!(unix_millis_ceil(datetime!(1970-01-01 00:00:01.000001 UTC)), 1001);
        assert_eq!(unix_millis_ceil(datetime!(1969-12-31 23:59:59.9995 UTC)), 0);
    }

    #[test]
    fn floats_are_written_shortest() {
        assert_eq!(real(1_700_000_000.123_456), "1700000000.123456");
        assert_eq!(real(1.0), "1");
        assert_eq!(real(0.1), "0.1");
    }

    /// Every script declares its flags: those that may grow memory none (refused over
    /// `maxmemory`), those that only delete `allow-oom`, the read `no-writes`.
    #[test]
    fn every_script_declares_its_flags() {
        for (script, flags) in [
            (PUT_LUA, "#!lua\n"),
            (TOUCH_LUA, "#!lua\n"),
            (RECORD_USES_LUA, "#!lua\n"),
            (RECORD_CHECK_LUA, "#!lua\n"),
            (REBUILD_LUA, "#!lua\n"),
            (DELETE_LUA, "#!lua flags=allow-oom\n"),
            (CLEAR_LUA, "#!lua flags=allow-oom\n"),
            (CLEANUP_LUA, "#!lua flags=allow-oom\n"),
            (SIZE_LUA, "#!lua flags=allow-oom\n"),
            (KEYS_LUA, "#!lua flags=allow-oom\n"),
            (PRUNE_HISTORY_LUA, "#!lua flags=allow-oom\n"),
            (READ_LUA, "#!lua flags=no-writes\n"),
            (READ_HISTORY_LUA, "#!lua flags=no-writes\n"),
        ] {
            assert!(script.starts_with(flags), "{flags:?}: {}", &script[..40]);
            let built = with_entry_fields(script);
            assert!(built.starts_with(flags) && built.contains("local BUDGET = "));
        }
    }

    /// The token limit is the length of the token of the longest credential, as the ring makes
    /// it; every field's limit is in the scripts' table.
    #[test]
    fn limits_match_the_tokens_and_the_scripts() {
        let ring = KeyRing::new(pw_cache_crypto::FernetKey::generate(), []);
        for n in [0, 1, 15, 16, 17, 100, limits::MAX_CREDENTIAL_BYTES] {
            let token = ring.encrypt(&Secret::new("x".repeat(n)));
            assert_eq!(token.as_str().len(), limits::fernet_token_len(n), "{n}");
        }
        let built = with_entry_fields(READ_LUA);
        for (field, limit) in FIELD_LIMITS {
            assert!(built.contains(&format!("['{field}'] = {limit}")), "{field}");
            assert_eq!(field_limit(field), limit);
        }
        assert_eq!(field_limit("password_encrypted"), limits::MAX_CREDENTIAL_TOKEN_BYTES);
    }

    #[test]
    fn versions_compare() {
        assert!(version_at_least("7.0.15", (7, 0)));
        assert!(version_at_least("7.2.4", (7, 0)));
        assert!(version_at_least("10.0.0", (7, 0)));
        assert!(version_at_least("8", (7, 0)));
        assert!(!version_at_least("6.2.14", (7, 0)));
        assert!(!version_at_least("6", (7, 0)));
        assert!(!version_at_least("garbage", (7, 0)));
    }

    #[test]
    fn scan_patterns_are_escaped() {
        assert_eq!(glob_escape("pwc:{a*b?[c]\\}:e:"), "pwc:{a\\*b\\?\\[c\\]\\\\}:e:");
        assert_eq!(glob_escape("pwc:{pw-cache}:e:"), "pwc:{pw-cache}:e:");
    }

    #[test]
    fn read_replies_parse() {
        use redis::Value::{Array, BulkString, Int};
        let bulk = |s: &str| BulkString(s.as_bytes().to_vec());
        assert!(matches!(Stored::parse(Array(vec![])), Some(Stored::Absent)));
        let Some(Stored::Unreadable(reason)) =
            Stored::parse(Array(vec![bulk("!size"), bulk("proxy_url"), Int(67_108_864)]))
        else {
            panic!("a marker")
        };
        assert!(
            reason.contains("proxy_url") && reason.contains("67108864") && reason.contains("2048"),
            "{reason}"
        );
        assert!(matches!(
            Stored::parse(Array(vec![bulk("!type")])),
            Some(Stored::Unreadable(_))
        ));
        // A field that looks like a marker is a field.
        assert!(matches!(
            Stored::parse(Array(vec![bulk("!size"), bulk("x")])),
            Some(Stored::Fields(_))
        ));
        // A hash read whole: its values are checked here.
        let Some(Stored::Unreadable(reason)) = Stored::parse(Array(vec![bulk("source"), bulk(&"s".repeat(1025))]))
        else {
            panic!("too long")
        };
        assert!(reason.contains("source") && reason.contains("1025"), "{reason}");
        assert!(matches!(
            Stored::parse(Array(vec![bulk("key"), bulk("k"), bulk("other"), bulk(&"x".repeat(9000))])),
            Some(Stored::Fields(flat)) if flat.len() == 4
        ));
        assert!(Stored::parse(Int(1)).is_none());
    }

    #[test]
    fn a_hash_naming_another_key_is_corrupt() {
        let ring = KeyRing::new(pw_cache_crypto::FernetKey::generate(), []);
        let entry = CacheEntry::new("http://10.0.0.1:80", "s", 60)
            .unwrap()
            .with_key("victim");
        let mut flat: Vec<Vec<u8>> = entry_fields(&entry, &ring)
            .unwrap()
            .into_iter()
            .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.into_bytes()])
            .collect();
        assert!(Fields::new("victim", &flat).entry(&ring).is_ok());
        let err = Fields::new("decoy", &flat).entry(&ring).unwrap_err();
        assert!(
            matches!(err, TierError::Corrupt { .. }) && err.to_string().contains("field key"),
            "{err}"
        );
        assert!(Fields::new("decoy", &flat).check_key().is_err());
        flat.truncate(0);
        assert!(Fields::new("decoy", &flat).check_key().is_err(), "no key field");
    }
}
