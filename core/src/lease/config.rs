//! [`LeaseConfig`]: TTL, keep-alive schedule and retry policy, with Dynamo 1.6.1's defaults.

use std::time::Duration;

use thiserror::Error;

use super::backoff::Backoff;
use crate::kv::MAX_LEASE_TTL;

/// How one process lease is kept. `Default` matches dynamo-runtime 1.6.1; each field says where
/// its default comes from. Parsing `ETCD_LEASE_TTL` (and `ETCD_STARTUP_CONNECT_TIMEOUT_SECONDS`)
/// is the config module's job; it fills in [`LeaseConfig::ttl`] (and `grant_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The TTL asked for, whole seconds (etcd's unit). Default 30 s: `DEFAULT_LEASE_TTL_SECS`
    /// in 1.6.1's `src/transports/etcd.rs`, overridden there by `ETCD_LEASE_TTL` (an integer
    /// ≥ 1; anything else falls back to 30 with a warning). etcd may grant more (its minimum
    /// is 2 s); the machine uses the TTL granted.
    pub ttl: Duration,
    /// A keep-alive is sent when `1/keepalive_divisor` of the time left before the deadline has
    /// passed, and again on that schedule while unanswered. Default 2: 1.6.1's keep-alive loop
    /// (`src/transports/etcd/lease.rs`) sleeps half the time left before each heartbeat, so a
    /// 30 s lease is renewed every 15 s and an unanswered one at 22.5 s, 26.25 s, …
    pub keepalive_divisor: u32,
    /// Floor of that schedule. Default 50 ms (1.6.1's `min_backoff`); 1.6.1 itself has no
    /// floor and spins near the deadline.
    pub min_keepalive_interval: Duration,
    /// Backoff between keep-alive attempts after a failure (the first retry is immediate).
    /// Default 500 ms doubling to 5 s, never below 50 ms, and never more than half the time
    /// left: 1.6.1's reconnect backoff (`BackoffState` in `src/transports/etcd/connector.rs`).
    pub renew_backoff: Backoff,
    /// Give up renewing after this many attempts in one outage, even before the deadline.
    /// Default `None`: 1.6.1 retries until the deadline, and so do we.
    pub max_renew_attempts: Option<u32>,
    /// Backoff between grant attempts. Default 1 s doubling to 30 s
    /// (`STARTUP_CONNECT_INITIAL_BACKOFF`/`STARTUP_CONNECT_MAX_BACKOFF` in 1.6.1's etcd.rs),
    /// never below 50 ms.
    pub grant_backoff: Backoff,
    /// Give up granting after this long. Default 120 s: 1.6.1's
    /// `DEFAULT_STARTUP_CONNECT_TIMEOUT` (`ETCD_STARTUP_CONNECT_TIMEOUT_SECONDS`).
    pub grant_timeout: Duration,
    /// Spread every backoff uniformly over `[d/2, d]` with the seeded generator, so a fleet
    /// that lost etcd together does not retry in lockstep. Default on. 1.6.1 jitters its watch
    /// retries this way but not its lease reconnects.
    pub jitter: bool,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            keepalive_divisor: 2,
            min_keepalive_interval: Duration::from_millis(50),
            renew_backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(5),
                min: Duration::from_millis(50),
            },
            max_renew_attempts: None,
            grant_backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                min: Duration::from_millis(50),
            },
            grant_timeout: Duration::from_secs(120),
            jitter: true,
        }
    }
}

impl LeaseConfig {
    /// Checks the settings; [`Lease::new`](super::Lease::new) calls this.
    ///
    /// # Errors
    /// [`LeaseConfigError`] naming the field and the value.
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        if self.ttl < Duration::from_secs(1) || self.ttl.subsec_nanos() != 0 {
            return Err(LeaseConfigError::TtlNotWholeSeconds { ttl: self.ttl });
        }
        if self.ttl > MAX_LEASE_TTL {
            return Err(LeaseConfigError::TtlTooLarge { ttl: self.ttl });
        }
        if self.keepalive_divisor < 2 {
            return Err(LeaseConfigError::KeepaliveDivisor {
                divisor: self.keepalive_divisor,
            });
        }
        for (field, value) in [
            ("min_keepalive_interval", self.min_keepalive_interval),
            ("renew_backoff.min", self.renew_backoff.min),
            ("renew_backoff.initial", self.renew_backoff.initial),
            ("grant_backoff.min", self.grant_backoff.min),
            ("grant_backoff.initial", self.grant_backoff.initial),
            ("grant_timeout", self.grant_timeout),
        ] {
            if value.is_zero() {
                return Err(LeaseConfigError::Zero { field });
            }
        }
        for (field, backoff) in [
            ("renew_backoff", self.renew_backoff),
            ("grant_backoff", self.grant_backoff),
        ] {
            if backoff.max < backoff.initial || backoff.max < backoff.min {
                return Err(LeaseConfigError::BackoffOrder {
                    field,
                    backoff: format!("{backoff:?}"),
                });
            }
        }
        if self.max_renew_attempts == Some(0) {
            return Err(LeaseConfigError::Zero {
                field: "max_renew_attempts",
            });
        }
        Ok(())
    }
}

/// A [`LeaseConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LeaseConfigError {
    /// etcd takes TTLs in whole seconds, at least 1.
    #[error("lease ttl {ttl:?} is not a whole number of seconds ≥ 1 s")]
    TtlNotWholeSeconds {
        /// The TTL given.
        ttl: Duration,
    },
    /// Above etcd's maximum TTL.
    #[error("lease ttl {ttl:?} exceeds etcd's maximum of 9000000000 s")]
    TtlTooLarge {
        /// The TTL given.
        ttl: Duration,
    },
    /// A divisor below 2 would schedule the keep-alive at or after the deadline.
    #[error("lease keepalive_divisor {divisor} must be at least 2")]
    KeepaliveDivisor {
        /// The divisor given.
        divisor: u32,
    },
    /// A duration or count that must be positive is zero.
    #[error("lease {field} must not be zero")]
    Zero {
        /// Which field.
        field: &'static str,
    },
    /// `max` is below `initial` or `min`.
    #[error("lease {field}: max must be at least initial and min, got {backoff}")]
    BackoffOrder {
        /// Which field.
        field: &'static str,
        /// The backoff given.
        backoff: String,
    },
}
