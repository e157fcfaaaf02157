//! The plain data of the store: revisions, lease ids, keys, entries and bucket names.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;

use super::error::BucketNameError;

/// A point in the store's history. The store starts at revision 1 (as etcd does) and every
/// transaction that changes at least one key advances it by exactly one.
pub type Revision = u64;

/// A key: a UTF-8 path such as `v1/instances/ns/comp/ep/1a2b`. Shared (`Arc<str>`) so that
/// entries, history and watch events hand it out without copying.
pub type Key = Arc<str>;

/// The id of a lease. Never 0: etcd uses 0 for "no lease". Printed as lowercase hex without
/// padding, the form Dynamo uses for instance ids (which are lease ids under etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(NonZeroU64);

impl LeaseId {
    /// The lease id with this raw value, or `None` for 0 (etcd's "no lease").
    pub const fn new(raw: u64) -> Option<Self> {
        match NonZeroU64::new(raw) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The raw value (an etcd driver casts it to the `i64` the wire carries).
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// One key with its value and etcd's metadata, as `get`, `range`, snapshots and watch events
/// return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: Key,
    /// The value, shared without copying.
    pub value: Bytes,
    /// The revision of the transaction that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the transaction that last wrote the key.
    pub mod_revision: Revision,
    /// Number of writes since creation: 1 after the creating put, +1 per later put. A delete
    /// removes the key; a later put starts again at 1.
    pub version: u64,
    /// The lease the key is attached to, if any; the key is deleted when that lease ends.
    pub lease: Option<LeaseId>,
}

/// A validated bucket name: a named key space, stored as the key prefix `name/` (Dynamo's etcd
/// store lays buckets out that way; its file store makes each one a directory under
/// `DYN_FILE_KV`, which is why a name must also be a safe relative path).
///
/// Rules: one or more `/`-separated segments, each non-empty, not `.` or `..`, and made of
/// `a-z`, `A-Z`, `0-9`, `_`, `-`, `.`. Examples: `v1/instances`, `v1/mdc`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketName(String);

impl BucketName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`BucketNameError`] naming the offending character or segment.
    pub fn new(name: &str) -> Result<Self, BucketNameError> {
        if name.is_empty() {
            return Err(BucketNameError::Empty);
        }
        let mut offset = 0;
        for segment in name.split('/') {
            if segment.is_empty() {
                return Err(BucketNameError::EmptySegment {
                    name: name.to_owned(),
                    at: offset,
                });
            }
            if segment == "." || segment == ".." {
                return Err(BucketNameError::DotSegment {
                    name: name.to_owned(),
                    segment: segment.to_owned(),
                });
            }
            for (i, c) in segment.char_indices() {
                if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                    return Err(BucketNameError::BadCharacter {
                        name: name.to_owned(),
                        character: c,
                        at: offset + i,
                    });
                }
            }
            offset += segment.len() + 1;
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key prefix of the bucket: the name and a `/`. `range`/`watch` on it see exactly
    /// this bucket (bucket `a` does not see keys of bucket `ab`).
    pub fn prefix(&self) -> String {
        format!("{}/", self.0)
    }

    /// The full key of `relative` inside this bucket.
    pub fn key(&self, relative: &str) -> String {
        format!("{}/{relative}", self.0)
    }

    /// The part of `key` after this bucket's prefix, or `None` when `key` is not in the bucket.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.0.as_str())?.strip_prefix('/')
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
