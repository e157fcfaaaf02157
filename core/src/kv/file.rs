//! The on-disk layout of Dynamo's file store (`DYN_FILE_KV`), as pure functions, so the tokio
//! and smol file backends share one definition and stay compatible with Dynamo 1.6.1
//! (`src/storage/kv/file.rs`).
//!
//! - Each bucket is a directory `root/<bucket name>` (a [`BucketName`](super::BucketName) is a
//!   safe relative path: no `..`, no empty segments).
//! - Each key is one file in its bucket's directory, named by [`file_name`]: the key relative to
//!   the bucket, with every byte outside `A-Z a-z 0-9` written `%XX` (uppercase hex). The file
//!   holds the value.
//! - Writes go to a temporary file (name starting with [`TEMP_FILE_PREFIX`]) that is then
//!   renamed (overwrite) or hard-linked (create-if-absent) into place; listings and watchers
//!   skip temporary files.
//! - There are no leases. The owner of a file touches its mtime every
//!   [`keep_alive_interval`] (about a third of the TTL); any peer deletes files whose mtime is older
//!   than the bucket TTL ([`DEFAULT_TTL`] unless the bucket was opened with another; never
//!   below [`MIN_TTL`]); owners delete their files on shutdown. The [`Kv`](super::Kv) model
//!   expresses the same lifetime as one lease per process whose TTL is the bucket TTL.

use std::time::Duration;

/// Bucket TTL when none is given: 10 s (`DEFAULT_TTL` in 1.6.1's file store).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Shortest bucket TTL and keep-alive interval: 1 s (`MIN_KEEP_ALIVE`); shorter TTLs are raised.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// Prefix of in-progress temporary files (`.tmp_`); never a key's file name, since `.` is
/// always escaped there.
pub const TEMP_FILE_PREFIX: &str = ".tmp_";

/// How often a process touches its files and sweeps expired ones, given the shortest TTL of
/// the buckets it uses: `max(min(ttl, DEFAULT_TTL) / 3, 1 s)` — 1.6.1's expiry thread starts
/// from [`DEFAULT_TTL`] and takes the minimum with every bucket's TTL.
pub fn keep_alive_interval(shortest_ttl: Duration) -> Duration {
    (shortest_ttl.min(DEFAULT_TTL) / 3).max(MIN_TTL)
}

/// The file name of `key` (relative to its bucket):
/// `ns/backend/generate/17216e63492ef21f` → `ns%2Fbackend%2Fgenerate%2F17216e63492ef21f`.
pub fn file_name(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(key.len());
    for &byte in key.as_bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
    out
}

/// The key a file name stands for. Lenient as Dynamo's decoder: `%XX` in either case is
/// decoded, a `%` not followed by two hex digits stays as it is, and bytes that are not UTF-8
/// become U+FFFD.
pub fn key_from_file_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Whether a directory entry is a temporary file that listings and watchers must skip.
pub fn is_temp_file_name(name: &str) -> bool {
    name.starts_with(TEMP_FILE_PREFIX)
}
