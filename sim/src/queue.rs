//! The event queue: a binary heap ordered by (time, insertion sequence), so that events at the
//! same virtual instant run in the order they were scheduled — the tie-break that keeps a run
//! deterministic.
//!
//! The heap holds only the ordering key and a slot; the events wait in a slab beside it, so
//! that sifting moves 24 bytes per level rather than a whole event.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::world::Ev;

/// Pending events, earliest first.
#[derive(Default)]
pub(crate) struct Queue {
    /// `(time, sequence, slot)`, reversed: `BinaryHeap` is a max-heap and we want the earliest
    /// first. The sequence is unique, so the slot never decides the order.
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Vec<Option<Ev>>,
    free: Vec<u32>,
    seq: u64,
}

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
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Ev)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        let ev = self.slab[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        Some((at, ev))
    }
}
