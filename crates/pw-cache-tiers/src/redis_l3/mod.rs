//! L3 in Redis (cargo feature `redis`): one tier shared by a fleet of hosts, each keeping its
//! own L1 (and L2), with the observable behaviour of [`crate::SqliteL3Tier`] and change events
//! the other hosts' upper tiers can follow.
//!
//! # Layout
//!
//! Every key lives under the namespace `ns` (default [`DEFAULT_NAMESPACE`]) and carries the
//! hash tag `{ns}`, so that every key of a namespace is in one Redis Cluster slot and one Lua
//! script can touch them all (specified in [`pw_cache::docs::formats`], "Redis L3"):
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
//! With `maxmemory` and `maxmemory-policy noeviction` (the setting [`pw_cache::docs::fleet`] requires),
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
//! default of the flags line (`#!lua`, no flags).
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
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html
//! [`pw_cache::docs::fleet`]: https://docs.rs/pw-cache/latest/pw_cache/docs/fleet/index.html

#[cfg(doc)]
use crate::{CacheTier, TierError, TierHealth};

// The tier: its options, the names of its keys, its scripts and connections.
mod codec;
mod names;
mod options;
mod pool;
mod redact;
mod replies;
mod scripts;
mod tier;
mod version;
// Its operations, one file each (the `CacheTier` impl in `tier.rs` calls them).
mod delete;
mod history;
mod mark_failure;
mod put;
mod read;
mod rebuild;
mod rotate;
mod uses;
// Change events.
mod subscriber;

#[cfg(test)]
mod tests;

pub use options::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HISTORY_CAP, DEFAULT_NAMESPACE, DEFAULT_POOL_SIZE,
    RedisL3Options,
};
pub use subscriber::{ChangeKind, RemoteEvent, SUBSCRIBER_MAX_BACKOFF, Subscription};
pub use tier::RedisL3Tier;
pub use version::MIN_REDIS_VERSION;
