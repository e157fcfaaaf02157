//! Offering one request to another instance when the one chosen never took it.
//!
//! A request may go to a second instance only if the first cannot have acted on it: sending
//! an accepted request again could run it twice (two generations billed, two side effects). So
//! the driver reports the *facts* of each attempt as an [`Outcome`] — the dial failed, the
//! connection closed before the request was written, the first answer was an error of some
//! kind — and this module decides, in one place for every request plane, whether the instance
//! accepted it ([`Outcome::delivery`]) and whether to report it down
//! ([`Refusal::reports_down`]); [`super::Placement`] applies that to one request's attempts and
//! decides whether to try another.
//!
//! | outcome | delivery | report down | next |
//! |---|---|---|---|
//! | `ConnectFailed` | refused (`Unreachable`) | yes | another instance, within the budget |
//! | `ClosedBeforeSent` | refused (`ClosedBeforeSent`) | yes | another instance, within the budget |
//! | `EndedBeforeData(WorkerUnavailable)` | refused (`Unavailable`) | yes | another instance, within the budget |
//! | `EndedBeforeData(WorkerOverloaded)` | refused (`Overloaded`) | no (healthy, only busy) | another instance, within the budget |
//! | `EndedBeforeData(any other kind)` | accepted (the instance's answer) | — | the caller gets it |
//! | `ClosedAfterSent` | accepted (it may have started) | — | the caller gets it |
//! | `Answered` | accepted | — | the caller gets it |
//!
//! A refusal with no attempt left, or under [`Policy::Direct`](super::Policy::Direct) (which
//! names one instance), is the caller's error.
//!
//! ```
//! use dynrt_core::router::{Delivery, Outcome, Refusal};
//! use dynrt_core::wire::mux::ErrorKind;
//!
//! // A draining instance's first answer: it never ran the handler, so another may.
//! let refused = Outcome::EndedBeforeData(ErrorKind::WORKER_UNAVAILABLE).delivery();
//! assert_eq!(refused, Delivery::Refused(Refusal::Unavailable));
//! // The connection died after the request was written: it may have started, so it stays.
//! assert_eq!(Outcome::ClosedAfterSent.delivery(), Delivery::Accepted);
//! ```

use std::num::NonZeroU32;

use crate::wire::mux::ErrorKind;

/// How far a client goes to deliver one request that instances refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Instances one request may be offered to, the first included (1: never retry).
    pub max_attempts: NonZeroU32,
}

impl RetryConfig {
    /// The default budget: three instances. One dead instance plus one draining one still
    /// leave a third try, while a request never fans out over a whole fleet.
    pub const DEFAULT_MAX_ATTEMPTS: NonZeroU32 = NonZeroU32::new(3).expect("3 is not zero");

    /// A budget of `max_attempts` instances per request.
    pub fn new(max_attempts: NonZeroU32) -> Self {
        Self { max_attempts }
    }

    /// Never offer a request to a second instance.
    pub fn never() -> Self {
        Self::new(NonZeroU32::MIN)
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_ATTEMPTS)
    }
}

/// What the driver saw of one attempt to hand a request to an instance: facts only, whatever
/// the request plane. [`Outcome::delivery`] decides what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// No connection could be made: refused, unreachable, or the dial timed out.
    ConnectFailed,
    /// The connection closed (or never finished its handshake) before the request was written
    /// to it.
    ClosedBeforeSent,
    /// The request was written, then the connection died before any answer: the instance may
    /// have started on it.
    ClosedAfterSent,
    /// The instance's first answer ended the request with an error of this kind.
    EndedBeforeData(ErrorKind),
    /// The instance's first answer was a response item or a clean end.
    Answered,
}

impl Outcome {
    /// Whether the instance took the request (see the table in the module doc).
    pub fn delivery(self) -> Delivery {
        match self {
            Self::ConnectFailed => Delivery::Refused(Refusal::Unreachable),
            Self::ClosedBeforeSent => Delivery::Refused(Refusal::ClosedBeforeSent),
            Self::EndedBeforeData(ErrorKind::WORKER_UNAVAILABLE) => {
                Delivery::Refused(Refusal::Unavailable)
            }
            Self::EndedBeforeData(ErrorKind::WORKER_OVERLOADED) => {
                Delivery::Refused(Refusal::Overloaded)
            }
            Self::EndedBeforeData(_) | Self::ClosedAfterSent | Self::Answered => Delivery::Accepted,
        }
    }
}

/// Whether an instance took a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It took it: whatever follows (items, an error, a dead connection) is its answer, and the
    /// request is never sent anywhere else.
    Accepted,
    /// It never took it: the request may go to another instance.
    Refused(Refusal),
}

/// Why an instance never took a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// It could not be reached.
    Unreachable,
    /// Its connection closed before the request was written.
    ClosedBeforeSent,
    /// It answered that it does not serve the request (draining, or a GOAWAY that came before
    /// the request): `WorkerUnavailable`.
    Unavailable,
    /// It answered that it is out of capacity: `WorkerOverloaded`.
    Overloaded,
}

impl Refusal {
    /// Whether the instance should be reported down (hidden from routing until the reconcile
    /// interval restores it): yes when it is unreachable or leaving; no when it is merely
    /// busy, which a down mark would turn into a long outage of a healthy instance.
    pub fn reports_down(self) -> bool {
        !matches!(self, Self::Overloaded)
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// The instance took the request: hand its answer to the caller.
    Accepted,
    /// It refused; offer the request to another instance ([`super::Placement::choose`] again).
    Retry(Refusal),
    /// It refused and no attempt is left (or the policy names this one instance): the refusal
    /// is the caller's error.
    GiveUp(Refusal),
}
