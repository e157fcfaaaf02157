//! An item that arrives in pieces (DATA with MORE), joined into one buffer when it is whole.
//!
//! A server cuts an item when its output is nearly full: with 1 MiB answers and 4 in flight,
//! every other answer left as one piece of about 1 MiB and a tail of a few hundred bytes.
//! Appending each piece to one growing buffer copied the big piece in, then copied it again
//! when the tail made the buffer grow (twice the item's size copied, three times its size in
//! fresh memory faulted in). Here large pieces are kept as the `Bytes` the decoder cut out of
//! the read buffer (no copy until the end), and the item is joined once, into a buffer of its
//! exact size; an item whose pieces are one large piece and empty ones is not copied at all.
//!
//! Small pieces are copied at once into a buffer of their own, as before: a piece pins the
//! read buffer it was cut from, and a peer trickling small pieces (each read into a fresh
//! buffer) would otherwise hold many times the item's size. A piece of at least
//! [`KEEP_FROM`] bytes is at least half of its read buffer (read buffers grow 64 KiB at a time,
//! and the decoder reserves a larger frame's exact size), so keeping it holds at most twice
//! what a copy would.

use bytes::{Bytes, BytesMut};

/// Pieces at least this long are kept as they are; shorter ones are copied.
pub(crate) const KEEP_FROM: usize = 64 * 1024;

/// The pieces of one item received so far, in order.
#[derive(Default)]
pub(crate) struct Pieces {
    /// Large pieces as received, and runs of small ones copied together.
    parts: Vec<Bytes>,
    /// Small pieces since the last large one.
    small: BytesMut,
    len: usize,
}

impl Pieces {
    pub(crate) fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        if piece.len() < KEEP_FROM {
            self.small.extend_from_slice(&piece);
            return;
        }
        if !self.small.is_empty() {
            self.parts.push(self.small.split().freeze());
        }
        self.parts.push(piece);
    }

    /// The whole item: one copy into a buffer of its size, none when there is only one part.
    pub(crate) fn join(mut self) -> Bytes {
        if self.parts.is_empty() {
            return self.small.freeze();
        }
        if self.small.is_empty() && self.parts.len() == 1 {
            return self.parts.pop().expect("one part");
        }
        let mut whole = BytesMut::with_capacity(self.len);
        for part in &self.parts {
            whole.extend_from_slice(part);
        }
        whole.extend_from_slice(&self.small);
        whole.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, byte: u8) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn one_large_piece_and_an_empty_end_is_the_item_itself() {
        let big = filled(KEEP_FROM * 2, 7);
        let mut pieces = Pieces::default();
        pieces.push(big.clone());
        pieces.push(Bytes::new());
        let whole = pieces.join();
        assert_eq!(whole.as_ptr(), big.as_ptr(), "no copy");
        assert_eq!(whole.len(), big.len());
    }

    #[test]
    fn large_and_small_pieces_join_in_order_into_a_buffer_of_the_exact_size() {
        let mut pieces = Pieces::default();
        let parts = [
            filled(10, 1),
            filled(KEEP_FROM, 2),
            filled(300, 3),
            filled(5, 4),
            filled(KEEP_FROM + 1, 5),
            filled(7, 6),
        ];
        let mut expected = Vec::new();
        for part in &parts {
            pieces.push(part.clone());
            expected.extend_from_slice(part);
        }
        let whole = pieces.join();
        assert_eq!(&whole[..], &expected[..]);
    }

    #[test]
    fn small_pieces_alone_are_the_copy_already_made() {
        let mut pieces = Pieces::default();
        pieces.push(Bytes::from_static(b"ab"));
        pieces.push(Bytes::from_static(b"cd"));
        assert_eq!(&pieces.join()[..], b"abcd");
    }

    #[test]
    fn an_item_of_empty_pieces_is_empty() {
        let mut pieces = Pieces::default();
        pieces.push(Bytes::new());
        pieces.push(Bytes::new());
        assert!(pieces.join().is_empty());
    }
}
