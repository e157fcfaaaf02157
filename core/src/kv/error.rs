//! Errors of the KV model, one enum per operation.

use std::time::Duration;

use thiserror::Error;

use super::types::{KeyValue, LeaseId, Revision};
use super::watch::WatchId;

/// The lease named in a request does not exist: it was never granted, was revoked, or expired.
/// etcd answers `lease not found`; on a keep-alive stream it answers with a TTL of 0 instead,
/// which an etcd driver maps to this error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("lease {lease} not found (never granted, revoked, or expired)")]
pub struct LeaseNotFound {
    /// The lease asked for.
    pub lease: LeaseId,
}

/// Why a bucket name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BucketNameError {
    /// The name is empty.
    #[error("bucket name is empty")]
    Empty,
    /// Two `/` in a row, or a leading or trailing `/`.
    #[error("bucket name '{name}': empty segment at {at} (no leading, trailing or double '/')")]
    EmptySegment {
        /// The rejected name.
        name: String,
        /// Byte offset of the empty segment.
        at: usize,
    },
    /// A segment is `.` or `..` (a file backend would leave its root).
    #[error("bucket name '{name}': segment '{segment}' is not allowed")]
    DotSegment {
        /// The rejected name.
        name: String,
        /// The segment.
        segment: String,
    },
    /// A character outside the allowed set.
    #[error(
        "bucket name '{name}': character {character:?} at {at} is not allowed (use a-z, A-Z, 0-9, '_', '-', '.', and '/' between segments)"
    )]
    BadCharacter {
        /// The rejected name.
        name: String,
        /// The character.
        character: char,
        /// Its byte offset.
        at: usize,
    },
}

/// Why a `put` failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PutError {
    /// etcd rejects the empty key ("key is not provided").
    #[error("put: the key is empty")]
    EmptyKey,
    /// The lease to attach does not exist.
    #[error("put '{key}': {source}")]
    LeaseNotFound {
        /// The key that was not written.
        key: String,
        /// The missing lease.
        source: LeaseNotFound,
    },
}

/// Why a `create` (create-if-absent) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The key exists; `current` is what is stored (its revisions, version and lease), so the
    /// caller can decide whether it is its own earlier registration.
    #[error(
        "key '{}' already exists (created at revision {}, modified at revision {}, version {})",
        current.key, current.create_revision, current.mod_revision, current.version
    )]
    AlreadyExists {
        /// The stored entry.
        current: Box<KeyValue>,
    },
    /// etcd rejects the empty key.
    #[error("create: the key is empty")]
    EmptyKey,
    /// The lease to attach does not exist.
    #[error("create '{key}': {source}")]
    LeaseNotFound {
        /// The key that was not written.
        key: String,
        /// The missing lease.
        source: LeaseNotFound,
    },
}

/// Why a `compare_and_swap` failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CasError {
    /// The key does not exist (it is never created by a compare-and-swap).
    #[error("compare-and-swap '{key}': the key does not exist")]
    Missing {
        /// The key.
        key: String,
    },
    /// Someone else wrote the key since `expected` was read.
    #[error(
        "compare-and-swap '{}': expected modification revision {expected}, found {}",
        current.key, current.mod_revision
    )]
    Conflict {
        /// The modification revision the caller expected.
        expected: Revision,
        /// What is stored now.
        current: Box<KeyValue>,
    },
    /// etcd rejects the empty key.
    #[error("compare-and-swap: the key is empty")]
    EmptyKey,
    /// The lease to attach does not exist.
    #[error("compare-and-swap '{key}': {source}")]
    LeaseNotFound {
        /// The key that was not written.
        key: String,
        /// The missing lease.
        source: LeaseNotFound,
    },
}

/// Why a lease grant failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GrantError {
    /// etcd refuses TTLs above 9,000,000,000 s (`ErrLeaseTTLTooLarge`).
    #[error("lease TTL of {} s exceeds the maximum of {} s", ttl.as_secs(), max.as_secs())]
    TtlTooLarge {
        /// The TTL asked for.
        ttl: Duration,
        /// The largest TTL allowed.
        max: Duration,
    },
}

/// Why a compaction was refused (etcd's `ErrFutureRev` and `ErrCompacted`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The revision has not happened yet.
    #[error("cannot compact to revision {requested}: the current revision is {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's revision.
        current: Revision,
    },
    /// The history before that revision is already gone.
    #[error("cannot compact to revision {requested}: already compacted to {compact_revision}")]
    AlreadyCompacted {
        /// The revision asked for.
        requested: Revision,
        /// The current compaction point.
        compact_revision: Revision,
    },
}

/// A watch id that does not name a live watch (never created, cancelled, or ended after
/// reporting `Compacted`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("watch {watch} does not exist (never created, cancelled, or ended)")]
pub struct UnknownWatch {
    /// The id asked for.
    pub watch: WatchId,
}
