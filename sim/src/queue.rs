//! The event queue: a binary heap ordered by (time, insertion sequence), so that events at the
//! same virtual instant run in the order they were scheduled — the tie-break that keeps a run
//! deterministic.
//!
//! The heap holds only the ordering key and a slot, packed into one `u128` (time, then the
//! sequence, then the slot: compared as one number, that is the order of (time, sequence), since
//! sequences are unique); the events wait in a slab beside it, so that sifting moves and
//! compares 16 bytes per level rather than a whole event.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::world::Ev;

/// Pending events, earliest first.
#[derive(Default)]
pub(crate) struct Queue {
    /// `time << 64 | sequence << SLOT_BITS | slot`, reversed: `BinaryHeap` is a max-heap and we
    /// want the earliest first. The sequence is unique, so the slot never decides the order.
    heap: BinaryHeap<Reverse<u128>>,
    slab: Vec<Option<Ev>>,
    free: Vec<u32>,
    seq: u64,
}

/// Bits of a key that hold the slot: room for 16 M events waiting at once (a run holds a few
/// thousand), and 2^40 sequence numbers above them.
const SLOT_BITS: u32 = 24;

impl Queue {
    pub(crate) fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(ev);
                slot
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        assert!(
            slot < 1 << SLOT_BITS && self.seq < 1 << (64 - SLOT_BITS),
            "the event queue holds more than {} events at once, or scheduled more than {}",
            1u64 << SLOT_BITS,
            1u64 << (64 - SLOT_BITS)
        );
        let key = u128::from(at) << 64 | u128::from(self.seq << SLOT_BITS | u64::from(slot));
        self.heap.push(Reverse(key));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Ev)> {
        let Reverse(key) = self.heap.pop()?;
        let at = (key >> 64) as u64;
        let slot = (key as u64 & ((1 << SLOT_BITS) - 1)) as u32;
        self.free.push(slot);
        let ev = self.slab[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        Some((at, ev))
    }
}
