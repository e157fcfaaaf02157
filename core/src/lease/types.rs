//! The lease machine's states, commands, events and input errors.

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::kv::LeaseId;

/// Where the lease is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseState {
    /// Asking etcd for a lease.
    Granting {
        /// Grant attempts made so far (the one in flight included).
        attempt: u32,
        /// When the next attempt is sent; `None` while one is in flight.
        retry_at: Option<Instant>,
        /// Give up at this moment.
        give_up_at: Instant,
    },
    /// Healthy: keep-alives go out on schedule.
    Active {
        /// The lease.
        id: LeaseId,
        /// The TTL etcd granted.
        ttl: Duration,
        /// The lease is known to live until here.
        deadline: Instant,
        /// The next keep-alive is due here.
        next_keepalive: Instant,
    },
    /// A keep-alive failed; retrying with backoff until the deadline.
    Renewing {
        /// The lease.
        id: LeaseId,
        /// The TTL etcd granted.
        ttl: Duration,
        /// The lease is known to live until here.
        deadline: Instant,
        /// Keep-alive attempts sent since the failure.
        attempt: u32,
        /// The next attempt is sent here.
        next_attempt: Instant,
    },
    /// Shutting down: a `Revoke` is in flight, or (`id: None`) a grant whose lease will be
    /// revoked as soon as it arrives.
    Revoking {
        /// The lease being revoked.
        id: Option<LeaseId>,
    },
    /// Renewal is no longer possible.
    Lost {
        /// The lease, if one was granted.
        id: Option<LeaseId>,
        /// Why.
        reason: LostReason,
    },
    /// Shut down.
    Revoked {
        /// The lease that was revoked, if one was granted.
        id: Option<LeaseId>,
    },
}

impl LeaseState {
    /// The state's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Granting { .. } => "Granting",
            Self::Active { .. } => "Active",
            Self::Renewing { .. } => "Renewing",
            Self::Revoking { .. } => "Revoking",
            Self::Lost { .. } => "Lost",
            Self::Revoked { .. } => "Revoked",
        }
    }
}

/// Why a lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// etcd answered a keep-alive with TTL 0: the lease expired or was revoked there.
    Expired,
    /// The deadline passed without a successful keep-alive.
    DeadlinePassed,
    /// [`LeaseConfig::max_renew_attempts`](super::LeaseConfig::max_renew_attempts) keep-alive attempts failed.
    RetryBudgetSpent {
        /// Attempts made.
        attempts: u32,
    },
    /// No lease could be granted within [`LeaseConfig::grant_timeout`](super::LeaseConfig::grant_timeout).
    GrantFailed {
        /// Attempts made.
        attempts: u32,
    },
}

/// Work for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCommand {
    /// Grant a lease with this TTL (whole seconds).
    Grant {
        /// The TTL to ask for.
        ttl: Duration,
    },
    /// Send one keep-alive for the lease (re-establishing the keep-alive stream if needed).
    KeepAlive {
        /// The lease.
        id: LeaseId,
    },
    /// Revoke the lease (etcd deletes its keys).
    Revoke {
        /// The lease.
        id: LeaseId,
    },
}

/// What the application must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The lease exists; register under it.
    Granted {
        /// Its id (Dynamo's instance id under etcd).
        id: LeaseId,
        /// The TTL etcd granted.
        ttl: Duration,
    },
    /// Renewal is no longer possible: the registrations are gone or about to go. 1.6.1's
    /// answer, and dynrt's default, is to shut the process down.
    Lost {
        /// The lease, if one was granted.
        id: Option<LeaseId>,
        /// Why.
        reason: LostReason,
    },
    /// Shutdown finished.
    Revoked {
        /// The lease, if one was granted.
        id: Option<LeaseId>,
        /// Whether etcd confirmed the revoke (`false`: it failed; the lease will expire by
        /// itself within its TTL). `true` also when there was nothing to revoke.
        confirmed: bool,
    },
}

/// A `handle_*` call the machine could not accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LeaseInputError {
    /// No command this result could answer is outstanding (a driver bug). Nothing changed.
    #[error("lease: {input} is not expected in state {state} (no such command is outstanding)")]
    Unexpected {
        /// The input.
        input: &'static str,
        /// The state it arrived in.
        state: &'static str,
    },
    /// etcd granted a lease with TTL 0, which it never does; treated as a failed grant.
    #[error("lease: etcd granted lease {id} with a TTL of 0; treating the grant as failed")]
    ZeroTtl {
        /// The id it sent.
        id: LeaseId,
    },
}
