//! What the index of a shard records of each line: the live line of a key ([`Slot`]: where it
//! is, whether it can be read, its [`Rank`] for eviction), the stray lines no key owns
//! ([`Stray`]), and the counts of the other lines ([`LineCounts`]).

use pw_cache_model::{EvictionPolicy, OffsetDateTime};

/// Unix microseconds of a timestamp, rounded down (so `now >= expires_at` compares exactly).
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// What eviction orders entries by (see the module docs of `jsonl` for the approximation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rank {
    /// Last use, Unix µs: the stored `last_accessed`, or when this process last put or got it.
    pub(crate) used: i64,
    /// Uses: the stored `access_count`, plus the hits this process served.
    pub(crate) hits: u64,
    /// First insertion, Unix µs: the stored `fetch_time`, or when this process first put it.
    pub(crate) born: i64,
}

impl Rank {
    /// `self` for a key that had `prior`: the later use, the higher count, the first insertion.
    pub(super) fn after(self, prior: Option<Rank>) -> Rank {
        match prior {
            None => self,
            Some(p) => Rank {
                used: self.used.max(p.used),
                hits: self.hits.max(p.hits),
                born: p.born,
            },
        }
    }
}

/// Eviction order among readable entries: smaller goes first. (Unreadable entries are never
/// victims.)
pub(crate) type Priority = (i128, i128);

#[derive(Debug)]
pub(super) enum SlotState {
    Valid {
        rank: Rank,
        expires: i64,
    },
    /// An object with this key that is not an entry; `expires` is its `expires_at` when that
    /// field alone can be read.
    Invalid {
        reason: Box<str>,
        expires: Option<i64>,
    },
}

/// The live line of one key.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) home: u8,
    /// Length of the line's terminator (`\n`, `\r`: 1; `\r\n`: 2; 0 for a last line without).
    pub(super) term: u8,
    /// Whether the line holds a credential token (a non-empty `*_encrypted` field).
    pub(super) creds: bool,
    /// Whether its tokens are known to open with the ring: this process wrote the line (with
    /// the ring's current key), so eviction and expiry cleanup need not try them.
    pub(super) verified: bool,
    /// Whether a token of the line was found unreadable: not hex, or no key of the ring opens it.
    pub(super) corrupt: bool,
    pub(super) state: SlotState,
}

impl Slot {
    pub(super) fn rank(&self) -> Option<Rank> {
        match self.state {
            SlotState::Valid { rank, .. } => Some(rank),
            SlotState::Invalid { .. } => None,
        }
    }

    pub(super) fn is_invalid(&self) -> bool {
        matches!(self.state, SlotState::Invalid { .. })
    }

    /// Whether the entry is known to be unreadable: broken fields, or a token found unreadable.
    /// (A token no key opens is only known once something tried it: see
    /// [`Slot::has_untried_tokens`].)
    pub(crate) fn is_unreadable(&self) -> bool {
        self.corrupt || self.is_invalid()
    }

    /// Whether the line holds credential tokens that must be tried against the ring before the
    /// entry is known to be readable (tokens this process wrote are known to open).
    pub(crate) fn has_untried_tokens(&self) -> bool {
        self.creds && !self.verified
    }

    /// Whether the entry, not known to be unreadable, is expired at `now` (Unix µs):
    /// `now >= expires_at`. An entry known to be unreadable is never expired.
    pub(crate) fn expired_at(&self, now: i64) -> bool {
        !self.corrupt && matches!(self.state, SlotState::Valid { expires, .. } if now >= expires)
    }

    /// Whether the entry is known to be unreadable and its `expires_at` field, read alone, is
    /// past at `now`: what expiry cleanup leaves and counts.
    pub(super) fn unreadable_and_past(&self, now: i64) -> bool {
        match self.state {
            SlotState::Valid { expires, .. } => self.corrupt && now >= expires,
            SlotState::Invalid { expires, .. } => expires.is_some_and(|e| now >= e),
        }
    }

    pub(super) fn priority(&self, policy: EvictionPolicy) -> Option<Priority> {
        match self.state {
            _ if self.corrupt => None,
            SlotState::Invalid { .. } => None,
            SlotState::Valid { rank, .. } => Some(match policy {
                EvictionPolicy::Lru => (rank.used.into(), rank.born.into()),
                EvictionPolicy::Lfu => (rank.hits.into(), rank.used.into()),
                EvictionPolicy::Fifo => (rank.born.into(), rank.used.into()),
            }),
        }
    }
}

/// A stray line: not blank, owned by no key (not JSON, or JSON that is no entry). Unreadable,
/// kept by every rewrite but the operator's removal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stray {
    pub(super) offset: u64,
    pub(super) len: usize,
    pub(super) term: u8,
}

/// Lines that are not the live line of a key.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LineCounts {
    pub(super) blank: u64,
    pub(super) undecodable: u64,
    pub(super) non_entry: u64,
    pub(super) superseded: u64,
}

impl LineCounts {
    /// Lines a rewrite drops: blank and superseded ones. Stray lines (undecodable, non-entry)
    /// are unreadable, not dead: every rewrite keeps them.
    pub(super) fn dead(&self) -> u64 {
        self.blank + self.superseded
    }
}
