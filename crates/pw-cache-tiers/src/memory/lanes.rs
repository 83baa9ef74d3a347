//! The accesses a shard notes before applying them to its lists: one lane per thread (by
//! thread number, modulo [`ACCESS_LANES`]), each on cache lines of its own, merged in the
//! order the tier's [`AccessOrder`] asks for (see the module docs of `memory`, "Access order").

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{AccessOrder, PENDING_ACCESSES, Padded};

/// Lanes of [`NotedAccesses`]: a thread notes its accesses in lane `thread number %
/// ACCESS_LANES`, so that two threads do not write the same lines.
const ACCESS_LANES: usize = 4;

/// The calling thread's lane in every shard's [`NotedAccesses`]: threads are numbered in the
/// order of their first access to any tier.
fn thread_lane() -> usize {
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % ACCESS_LANES;
    }
    // Lane 0 for a thread past its thread-locals' destruction: sharing a lane is only slower.
    LANE.try_with(|lane| *lane).unwrap_or(0)
}

/// One noted access: the shard's sequence number when it happened, and the slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Noted {
    seq: u64,
    slot: usize,
}

/// The accesses a shard has noted and not yet applied to its lists.
///
/// Each thread notes in a lane of its own (by thread number, modulo [`ACCESS_LANES`]; two
/// threads that share a lane are still correct, only slower), each lane on cache lines of its
/// own: a hit writes a line its own core already holds instead of one the other core wrote
/// last. With [`AccessOrder::Exact`] every access also takes the shard's next sequence number
/// (under the shard's lock, so the numbers follow the order of the accesses exactly), and
/// [`drain_in_order`](Self::drain_in_order) merges the lanes by it: the lists see the
/// accesses in the order they happened, whichever lanes they sit in. With
/// [`AccessOrder::PerThread`] it applies the lanes one after the other.
#[derive(Debug, Default)]
pub(super) struct NotedAccesses {
    /// Whether accesses take sequence numbers ([`AccessOrder::Exact`]) or not.
    pub(super) order: AccessOrder,
    /// The sequence number of the next access ([`AccessOrder::Exact`]).
    pub(super) next_seq: u64,
    /// `next_seq` when the lanes were last drained: equal when none is noted.
    pub(super) drained_at: u64,
    pub(super) lanes: [Padded<Vec<Noted>>; ACCESS_LANES],
}

impl NotedAccesses {
    /// Notes an access to `slot` in the calling thread's lane; `true` when that lane is full
    /// (holds [`PENDING_ACCESSES`]) and the accesses should be applied.
    pub(super) fn note(&mut self, slot: usize) -> bool {
        self.note_in(thread_lane(), slot)
    }

    /// [`note`](Self::note) in lane `lane`.
    pub(super) fn note_in(&mut self, lane: usize, slot: usize) -> bool {
        let seq = self.next_seq;
        if self.order == AccessOrder::Exact {
            self.next_seq = seq.wrapping_add(1);
        }
        let lane = &mut self.lanes[lane % ACCESS_LANES].0;
        lane.push(Noted { seq, slot });
        lane.len() >= PENDING_ACCESSES
    }

    pub(super) fn is_empty(&self) -> bool {
        match self.order {
            AccessOrder::Exact => self.next_seq == self.drained_at,
            AccessOrder::PerThread => self.lanes.iter().all(|lane| lane.0.is_empty()),
        }
    }

    /// Calls `apply` on every noted slot in the order of the accesses, and empties the lanes
    /// (keeping their buffers). [`AccessOrder::PerThread`]: lane after lane, each in order.
    pub(super) fn drain_in_order(&mut self, mut apply: impl FnMut(usize)) {
        if self.order == AccessOrder::PerThread {
            for lane in &mut self.lanes {
                lane.0.drain(..).for_each(|noted| apply(noted.slot));
            }
            return;
        }
        let mut next = [0_usize; ACCESS_LANES];
        loop {
            // The lane whose next access is the oldest. Sequence numbers are compared by
            // their distance from the first undrained one, so a wrap of the counter (after
            // 2^64 accesses) keeps the order.
            let mut oldest: Option<(usize, Noted)> = None;
            for (lane, at) in next.iter().enumerate() {
                if let Some(&noted) = self.lanes[lane].0.get(*at) {
                    let age = noted.seq.wrapping_sub(self.drained_at);
                    if oldest.is_none_or(|(_, o)| age < o.seq.wrapping_sub(self.drained_at)) {
                        oldest = Some((lane, noted));
                    }
                }
            }
            let Some((lane, noted)) = oldest else { break };
            next[lane] += 1;
            apply(noted.slot);
        }
        for lane in &mut self.lanes {
            lane.0.clear();
        }
        self.drained_at = self.next_seq;
    }
}
