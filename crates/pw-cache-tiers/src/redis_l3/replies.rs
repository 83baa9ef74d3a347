//! What the scripts answer: an entry hash as `read_hash` gives it ([`Stored`]: its fields, or
//! why it is unreadable, nothing too long transferred), and the replies of the put and expiry
//! cleanup scripts, which carry such hashes.

use crate::error::TierError;

use super::codec::{FIELD_LIMITS, field_limit};

/// What the put script answered.
#[derive(Debug)]
pub(super) enum PutReply {
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
    pub(super) fn parse(value: &redis::Value) -> Result<Self, TierError> {
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
pub(super) struct ExpiredChunk {
    /// Keys of the expired range looked at (entries and index leftovers).
    pub(super) seen: usize,
    /// The entries among them: key, hash.
    pub(super) entries: Vec<(String, Stored)>,
}

impl ExpiredChunk {
    pub(super) fn parse(value: &redis::Value) -> Result<Self, TierError> {
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
pub(super) enum Stored {
    /// No Redis key.
    Absent,
    /// The entry fields it holds: name, value, name, value …
    Fields(Vec<Vec<u8>>),
    /// Unreadable as it is (nothing of it was read): why.
    Unreadable(String),
}

impl Stored {
    /// `None` when `value` is not what `read_hash` returns.
    pub(super) fn parse(value: redis::Value) -> Option<Self> {
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
