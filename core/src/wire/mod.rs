//! Wire codecs: Dynamo-compatible frames ([`dynamo`]) and dynrt's own multiplexed framing
//! ([`mux`]).
//!
//! Both follow one shape. A decoder is a pull decoder: give it the `BytesMut` your socket reads
//! into, and it returns `Ok(Some(frame))` for every complete frame, `Ok(None)` when it needs more
//! bytes, or a [`DecodeError`]. Every length is checked against a limit as soon as it is read,
//! before anything is buffered, and payloads come back as `Bytes` split off the input without a
//! copy. An encoder appends to a `BytesMut` you own.

pub mod dynamo;
mod error;
pub mod mux;
mod out;

pub use error::{DecodeError, EncodeError};
pub use out::{DEFAULT_COPY_THRESHOLD, OutBuf};
