//! The frequency buckets of a shard, the classic O(1) LFU structure (Shah, Mitra and Matani,
//! 2010): a chain of buckets in increasing access count, each bucket a list of the slots with
//! that count, least recently used first. LRU and FIFO use the bucket of count 1 only.

use super::shard::{NIL, Shard};

/// The slots accessed `count` times, least recently used first, and the neighbouring buckets.
#[derive(Debug)]
pub(super) struct Bucket {
    /// How many accesses the slots of this bucket had (always 1 for LRU and FIFO).
    pub(super) count: u64,
    /// Least recently used slot (the victim if this is the lowest bucket).
    pub(super) head: usize,
    /// Most recently used slot.
    pub(super) tail: usize,
    /// The bucket of the next lower count.
    pub(super) lower: usize,
    /// The bucket of the next higher count.
    pub(super) higher: usize,
}

impl Shard {
    /// Moves `slot` to the bucket of the next count, at its most recent end (O(1)).
    pub(super) fn increment_count(&mut self, slot: usize) {
        let from = self.slots[slot].bucket;
        let Some(count) = self.buckets[from].count.checked_add(1) else {
            // u64::MAX accesses: the count saturates, recency still applies.
            self.move_to_most_recent(slot);
            return;
        };
        let higher = self.buckets[from].higher;
        let to = if higher != NIL && self.buckets[higher].count == count {
            higher
        } else {
            self.insert_bucket_after(from, count)
        };
        self.unlink(from, slot);
        self.append(to, slot);
        self.release_bucket_if_empty(from);
    }

    /// A new empty bucket of `count`, chained just above `lower` ([`NIL`]: as the lowest).
    pub(super) fn insert_bucket_after(&mut self, lower: usize, count: u64) -> usize {
        let higher = if lower == NIL {
            self.lowest
        } else {
            self.buckets[lower].higher
        };
        let bucket = Bucket {
            count,
            head: NIL,
            tail: NIL,
            lower,
            higher,
        };
        let index = match self.free_buckets.pop() {
            Some(free) => {
                self.buckets[free] = bucket;
                free
            }
            None => {
                self.buckets.push(bucket);
                self.buckets.len() - 1
            }
        };
        if lower == NIL {
            self.lowest = index;
        } else {
            self.buckets[lower].higher = index;
        }
        if higher != NIL {
            self.buckets[higher].lower = index;
        }
        index
    }

    /// Unchains and frees `bucket` if no slot is left in it.
    pub(super) fn release_bucket_if_empty(&mut self, bucket: usize) {
        if self.buckets[bucket].head != NIL {
            return;
        }
        let Bucket { lower, higher, .. } = self.buckets[bucket];
        if lower == NIL {
            self.lowest = higher;
        } else {
            self.buckets[lower].higher = higher;
        }
        if higher != NIL {
            self.buckets[higher].lower = lower;
        }
        self.free_buckets.push(bucket);
    }
}
