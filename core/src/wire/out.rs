//! [`OutBuf`]: the caller-owned output queue every encoder writes into.
//!
//! Small frames are coalesced into one contiguous buffer so that many of them leave in one
//! `write` call; large payloads are kept as the `Bytes` the application handed over (no copy) and
//! queued as separate segments, so a driver sends everything with one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Payloads at least this long are queued as their own segment instead of being copied into the
/// coalescing buffer. Below it a copy is cheaper than an extra `iovec` entry.
pub const DEFAULT_COPY_THRESHOLD: usize = 4 * 1024;

/// A queue of bytes waiting for a socket: finished segments, then an open coalescing buffer.
///
/// Encoders append headers with [`OutBuf::put_slice`]/[`OutBuf::with_buf`] and payloads with
/// [`OutBuf::put_bytes`]. The driver calls [`OutBuf::io_slices`] to get the next vectored write
/// and [`OutBuf::advance`] with the number of bytes the socket took.
#[derive(Debug)]
pub struct OutBuf {
    /// Segments that are complete and in order; the first may be partly written.
    segments: VecDeque<Bytes>,
    /// Small writes accumulate here until a large payload or a write forces it out.
    tail: BytesMut,
    copy_threshold: usize,
    len: usize,
}

impl Default for OutBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl OutBuf {
    /// An empty queue with the default copy threshold.
    pub fn new() -> Self {
        Self::with_copy_threshold(DEFAULT_COPY_THRESHOLD)
    }

    /// An empty queue that copies payloads shorter than `copy_threshold` bytes.
    pub fn with_copy_threshold(copy_threshold: usize) -> Self {
        Self {
            segments: VecDeque::new(),
            tail: BytesMut::new(),
            copy_threshold,
            len: 0,
        }
    }

    /// Payloads shorter than this are copied into the coalescing buffer (see
    /// [`OutBuf::put_bytes`]).
    pub fn copy_threshold(&self) -> usize {
        self.copy_threshold
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a small piece (a frame header) to the coalescing buffer.
    pub fn put_slice(&mut self, bytes: &[u8]) {
        self.tail.put_slice(bytes);
        self.len += bytes.len();
    }

    /// Gives an encoder direct access to the coalescing buffer; the bytes it appends are counted.
    pub fn with_buf<R>(&mut self, write: impl FnOnce(&mut BytesMut) -> R) -> R {
        let before = self.tail.len();
        let result = write(&mut self.tail);
        self.len += self.tail.len() - before;
        result
    }

    /// Appends a payload: copied if small, queued as its own segment (zero copy) if large.
    pub fn put_bytes(&mut self, bytes: Bytes) {
        if bytes.len() < self.copy_threshold {
            self.put_slice(&bytes);
            return;
        }
        self.seal_tail();
        self.len += bytes.len();
        self.segments.push_back(bytes);
    }

    /// Appends a payload the caller keeps (an encoder borrowing its frame): copied if small,
    /// with no handle cloned and dropped for it (an atomic count each on shared `Bytes`), or
    /// queued as its own segment, sharing the buffer, if large.
    pub fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < self.copy_threshold {
            self.put_slice(bytes);
        } else {
            self.put_bytes(bytes.clone());
        }
    }

    /// Fills `dst` with the queued data in order and returns how many slices were used. Pass
    /// them to a vectored write, then call [`OutBuf::advance`] with the bytes written.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in self
            .segments
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]))
        {
            if n == dst.len() {
                break;
            }
            if !chunk.is_empty() {
                dst[n] = IoSlice::new(chunk);
                n += 1;
            }
        }
        n
    }

    /// Drops the first `n` queued bytes (the ones a write just sent). `n` larger than
    /// [`OutBuf::len`] drops everything.
    pub fn advance(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                self.tail.advance(n);
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.segments.pop_front();
        }
    }

    /// Takes everything queued as one contiguous `Bytes` (copies only when there is more than
    /// one segment). Meant for tests and for transports without vectored writes.
    pub fn take_contiguous(&mut self) -> Bytes {
        self.seal_tail();
        self.len = 0;
        match self.segments.len() {
            0 => Bytes::new(),
            1 => self.segments.pop_front().expect("length checked above"),
            _ => {
                let mut all = BytesMut::with_capacity(self.segments.iter().map(Bytes::len).sum());
                for segment in self.segments.drain(..) {
                    all.put_slice(&segment);
                }
                all.freeze()
            }
        }
    }

    /// How many segments the queued bytes are in (the open coalescing buffer counts as one
    /// when it holds anything): what a vectored write of everything takes.
    pub fn segment_count(&self) -> usize {
        self.segments.len() + usize::from(!self.tail.is_empty())
    }

    /// Takes everything queued as its segments, in order, appended to `into` without a copy:
    /// for a transport that hands the bytes on as they are (a simulated socket).
    pub fn drain_segments(&mut self, into: &mut Vec<Bytes>) {
        self.seal_tail();
        self.len = 0;
        into.extend(self.segments.drain(..));
    }

    /// Turns the coalescing buffer into a finished segment so later payloads stay in order.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push_back(self.tail.split().freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_drained_in_order_without_a_copy() {
        let mut out = OutBuf::new();
        assert_eq!(out.segment_count(), 0);
        let large = Bytes::from(vec![7u8; DEFAULT_COPY_THRESHOLD]);
        out.put_slice(b"head");
        out.put_bytes(large.clone());
        out.put_slice(b"tail");
        assert_eq!(out.segment_count(), 3);
        let mut segments = Vec::new();
        out.drain_segments(&mut segments);
        assert!(out.is_empty() && out.segment_count() == 0);
        assert_eq!(segments.len(), 3);
        assert_eq!(&segments[0][..], b"head");
        assert_eq!(
            segments[1].as_ptr(),
            large.as_ptr(),
            "the large payload is not copied"
        );
        assert_eq!(&segments[2][..], b"tail");
        out.put_slice(b"more");
        assert_eq!(out.take_contiguous(), Bytes::from_static(b"more"));
    }

    #[test]
    fn small_payloads_are_coalesced_into_one_slice() {
        let mut out = OutBuf::new();
        out.put_slice(b"head");
        out.put_bytes(Bytes::from_static(b"small"));
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(out.io_slices(&mut slices), 1);
        assert_eq!(&*slices[0], b"headsmall");
    }

    #[test]
    fn large_payloads_stay_separate_and_in_order() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let mut out = OutBuf::with_copy_threshold(1024);
        out.put_slice(b"h1");
        out.put_bytes(big.clone());
        out.put_slice(b"h2");
        let mut slices = [IoSlice::new(&[]); 8];
        let n = out.io_slices(&mut slices);
        assert_eq!(n, 3);
        assert_eq!(
            slices[1].as_ptr(),
            big.as_ptr(),
            "payload must not be copied"
        );
        assert_eq!(out.len(), 10_004);
        out.advance(5);
        assert_eq!(out.len(), 9_999);
        let rest = out.take_contiguous();
        assert_eq!(&rest[..9_997], &big[3..]);
        assert_eq!(&rest[9_997..], b"h2");
        assert!(out.is_empty());
    }

    #[test]
    fn advance_across_segments_and_past_the_end() {
        let mut out = OutBuf::with_copy_threshold(2);
        out.put_bytes(Bytes::from_static(b"abc"));
        out.put_bytes(Bytes::from_static(b"def"));
        out.put_slice(b"g");
        out.advance(4);
        assert_eq!(&out.take_contiguous()[..], b"efg");
        out.put_slice(b"xyz");
        out.advance(100);
        assert!(out.is_empty());
        assert!(out.take_contiguous().is_empty());
    }
}
