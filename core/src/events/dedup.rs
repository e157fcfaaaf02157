//! Deduplication of events that arrive more than once (through several brokers), on
//! `(publisher_id, sequence)` as 1.6.1's `DeduplicatingStream`, in bounded memory.
//!
//! 1.6.1 keeps an LRU of the last 100 000 pairs. Here each publisher keeps the highest sequence
//! seen and a 1024-bit window below it: an event at or below the window's floor, or already
//! marked, is a duplicate. Sequences arrive nearly in order from each broker, so a window
//! covers the skew between brokers; publishers are bounded too (the one remembered first is
//! forgotten first).

use std::collections::{HashMap, VecDeque};

const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Remembers which `(publisher_id, sequence)` pairs were delivered.
#[derive(Debug)]
pub struct SequenceTracker {
    publishers: HashMap<u64, Window>,
    order: VecDeque<u64>,
    max_publishers: usize,
    duplicates: u64,
}

#[derive(Debug)]
struct Window {
    highest: u64,
    /// Bit `i` of the ring: sequence `highest - i` was seen.
    bits: [u64; WORDS],
}

impl Window {
    fn new(seq: u64) -> Self {
        let mut bits = [0; WORDS];
        bits[0] = 1;
        Self { highest: seq, bits }
    }

    fn bit(&self, back: u64) -> bool {
        self.bits[(back / 64) as usize] & (1 << (back % 64)) != 0
    }

    fn set(&mut self, back: u64) {
        self.bits[(back / 64) as usize] |= 1 << (back % 64);
    }

    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, by % 64);
        for i in (0..WORDS).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.bits[j]);
            let carry = match (bits, i.checked_sub(words + 1)) {
                (0, _) | (_, None) => 0,
                (b, Some(j)) => self.bits[j] >> (64 - b),
            };
            self.bits[i] = (lo << bits) | carry;
        }
    }

    /// Whether `seq` is new; marks it.
    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.set(0);
            return true;
        }
        let back = self.highest - seq;
        if back >= WINDOW || self.bit(back) {
            return false;
        }
        self.set(back);
        true
    }
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl SequenceTracker {
    /// A tracker remembering at most `max_publishers` publishers (at least 1).
    pub fn new(max_publishers: usize) -> Self {
        Self {
            publishers: HashMap::new(),
            order: VecDeque::new(),
            max_publishers: max_publishers.max(1),
            duplicates: 0,
        }
    }

    /// Whether the event is delivered for the first time (true) or a duplicate (false). An
    /// event older than the window (1024 sequences below the newest) counts as a duplicate.
    pub fn accept(&mut self, publisher_id: u64, sequence: u64) -> bool {
        let fresh = match self.publishers.get_mut(&publisher_id) {
            Some(w) => w.accept(sequence),
            None => {
                if self.publishers.len() >= self.max_publishers
                    && let Some(old) = self.order.pop_front()
                {
                    self.publishers.remove(&old);
                }
                self.publishers.insert(publisher_id, Window::new(sequence));
                self.order.push_back(publisher_id);
                true
            }
        };
        if !fresh {
            self.duplicates += 1;
        }
        fresh
    }

    /// Duplicates filtered so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Publishers remembered.
    pub fn publishers(&self) -> usize {
        self.publishers.len()
    }
}
