//! The topic filter of ZMQ pub/sub: a message matches when its first frame starts with any
//! subscribed prefix (the empty prefix matches everything). Subscriptions are counted, as in
//! libzmq: subscribing twice needs two cancels.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// Up to this many prefixes, matching compares each instead of probing the map.
const FEW: usize = 4;

/// A multiset of subscribed prefixes.
#[derive(Debug, Clone, Default)]
pub struct TopicFilter {
    counts: HashMap<Bytes, u32>,
    /// How many distinct prefixes have each length: matching probes one length at a time, so
    /// its cost follows the number of distinct lengths, not the topic's length.
    lengths: BTreeMap<usize, u32>,
}

impl TopicFilter {
    /// An empty filter (matches nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one subscription to `prefix`; true when the prefix was not subscribed before.
    pub fn subscribe(&mut self, prefix: Bytes) -> bool {
        let len = prefix.len();
        let count = self.counts.entry(prefix).or_insert(0);
        *count += 1;
        if *count == 1 {
            *self.lengths.entry(len).or_insert(0) += 1;
            true
        } else {
            false
        }
    }

    /// Removes one subscription to `prefix`; true when that was its last one. Cancelling a
    /// prefix that is not subscribed does nothing (and returns false), as in libzmq.
    pub fn unsubscribe(&mut self, prefix: &[u8]) -> bool {
        let Some(count) = self.counts.get_mut(prefix) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.counts.remove(prefix);
        if let Some(n) = self.lengths.get_mut(&prefix.len()) {
            *n -= 1;
            if *n == 0 {
                self.lengths.remove(&prefix.len());
            }
        }
        true
    }

    /// Removes every subscription to `prefix`; true when it was subscribed. A publisher keeps
    /// one peer's subscriptions as a set (libzmq's mtrie): one CANCEL undoes any number of
    /// SUBSCRIBEs for the same prefix from the same peer.
    pub fn remove(&mut self, prefix: &[u8]) -> bool {
        let Some(&count) = self.counts.get(prefix) else {
            return false;
        };
        for _ in 0..count {
            self.unsubscribe(prefix);
        }
        true
    }

    /// Whether a message whose first frame is `topic` matches.
    pub fn matches(&self, topic: &[u8]) -> bool {
        // A SUB socket usually holds one or two prefixes: comparing them beats hashing the
        // topic once per message (SipHash was ~8% of a 64-byte PUB→SUB run).
        if self.counts.len() <= FEW {
            return self.counts.keys().any(|prefix| topic.starts_with(prefix));
        }
        self.lengths
            .keys()
            .take_while(|&&len| len <= topic.len())
            .any(|&len| self.counts.contains_key(&topic[..len]))
    }

    /// Whether `prefix` itself is subscribed.
    pub fn contains(&self, prefix: &[u8]) -> bool {
        self.counts.contains_key(prefix)
    }

    /// The number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The distinct prefixes (in no particular order).
    pub fn prefixes(&self) -> impl Iterator<Item = &Bytes> {
        self.counts.keys()
    }
}
