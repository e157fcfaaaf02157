//! Shared helpers for dynrt's criterion benchmarks. The benchmarks themselves live in
//! `benches/benches/`.

use bytes::BytesMut;

/// The payload sizes Dynamo's own `tcp_codec_perf` bench uses: 100 B to 31 MB.
pub const FRAME_SIZES: [usize; 6] = [100, 1024, 10 * 1024, 100 * 1024, 1024 * 1024, 31_000_000];

/// A short label for a payload size (`100B`, `1KiB`, `31MB`).
pub fn size_label(size: usize) -> String {
    match size {
        s if s >= 1_000_000 && s % (1024 * 1024) != 0 => format!("{}MB", s / 1_000_000),
        s if s >= 1024 * 1024 => format!("{}MiB", s / (1024 * 1024)),
        s if s >= 1024 => format!("{}KiB", s / 1024),
        s => format!("{s}B"),
    }
}

/// Spare capacity after the encoded bytes, so that a decoder which reserves room for the next
/// frame header (tokio-util's does) never has to move the input to a new allocation.
const SLACK: usize = 64;

/// Lets a benchmark decode the same encoded bytes over and over without copying them back
/// into place each time, so that the timed decode of a 31 MB frame measures the decoder, not a
/// 31 MB memcpy.
///
/// Decoders split frames off the input `BytesMut`; once every piece they handed out has been
/// dropped, the input is again the only owner of its allocation, and `reserve` reclaims the
/// allocation from its start. The bytes there were written once by [`Recycler::new`] and never
/// since (decoders only read and split), so the buffer can be re-exposed at full length.
pub struct Recycler {
    buf: BytesMut,
    len: usize,
    capacity: usize,
    start: *const u8,
}

impl Recycler {
    /// Copies `wire` into a fresh buffer once.
    pub fn new(wire: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(wire.len() + SLACK);
        buf.extend_from_slice(wire);
        Self {
            start: buf.as_ptr(),
            capacity: buf.capacity(),
            len: wire.len(),
            buf,
        }
    }

    /// The buffer, holding the bytes given to [`Recycler::new`] (minus what was decoded).
    pub fn input(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Restores the buffer to its original contents. Every `Bytes` split off it must have been
    /// dropped first.
    ///
    /// # Panics
    /// If the decoder moved the input to another allocation, or if something split off the
    /// buffer is still alive (the allocation cannot be reclaimed).
    pub fn reset(&mut self) {
        // The input must still be a view into the original allocation: consumed bytes were split
        // off its front, so it starts where they end and its capacity shrank by as much.
        let consumed = self.len - self.buf.len();
        assert!(
            self.buf.as_ptr() == self.start.wrapping_add(consumed)
                && self.buf.capacity() == self.capacity - consumed,
            "the decoder moved its input to another allocation; cannot recycle"
        );
        self.buf.clear();
        self.buf.reserve(self.len);
        assert_eq!(
            self.buf.as_ptr(),
            self.start,
            "decoded frames must be dropped before reset: the allocation was not reclaimed"
        );
        // SAFETY: the checks above show `buf` never left the allocation `new` filled with `len`
        // initialised bytes (it kept a reference to it throughout, so it was never freed), and
        // `reserve` reclaimed it from the start; nothing has written to it since `new`, and
        // `reserve(len)` guarantees the capacity.
        #[allow(unsafe_code)]
        unsafe {
            self.buf.set_len(self.len)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycler_restores_contents_without_copying() {
        let wire: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut recycler = Recycler::new(&wire);
        for _ in 0..3 {
            let input = recycler.input();
            let a = input.split_to(100).freeze();
            let b = input.split_to(9_900).freeze();
            assert_eq!(&a[..], &wire[..100]);
            assert_eq!(&b[..], &wire[100..]);
            drop((a, b));
            recycler.reset();
            assert_eq!(&recycler.input()[..], &wire[..]);
        }
    }

    #[test]
    fn size_labels() {
        let labels: Vec<_> = FRAME_SIZES.iter().map(|&s| size_label(s)).collect();
        assert_eq!(labels, ["100B", "1KiB", "10KiB", "100KiB", "1MiB", "31MB"]);
    }
}
