//! Dynamo 1.6.1's NATS request plane: what travels over NATS, and the checks made before it
//! does.
//!
//! A caller sends the same two-part payload as on the TCP plane (control message + body) as
//! one NATS request to the instance's subject ([`crate::names::EndpointId::nats_subject`]),
//! with the headers of [`request_headers`]. The worker's reply is the ack: empty when it took
//! the request, otherwise one of the TCP plane's ack texts (`Server overloaded: …`,
//! `Server unavailable: …`), which 1.6.1's caller reads the same way. The answer then comes
//! back over a call-home TCP connection exactly as on the TCP plane ([`crate::callhome`]).

use std::fmt;
use std::time::Duration;

/// The queue group a worker subscribes its subject in: async-nats's service default, which
/// 1.6.1's endpoints use, so a dynrt worker and a Dynamo one never both take a request.
pub const QUEUE_GROUP: &str = "q";

/// The headers a 1.6.1 caller puts on a NATS request (besides trace propagation):
/// `request-id` (the worker's log and span key) and `x-frontend-send-ts-ns`.
#[must_use]
pub fn request_headers(request_id: &str, send_ts_ns: u128) -> [(&'static str, String); 2] {
    [
        ("request-id", request_id.to_owned()),
        ("x-frontend-send-ts-ns", send_ts_ns.to_string()),
    ]
}

/// Why a NATS request-plane call failed before the worker took the request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsFailure {
    /// The request is larger than the server accepts: refused before sending (a NATS server
    /// drops the connection on such a message, which 1.6.1 users see as an opaque timeout).
    PayloadTooLarge {
        /// The request's size on the wire (two-part payload), in bytes.
        payload: usize,
        /// The server's `max_payload`, in bytes.
        max_payload: usize,
    },
    /// Nobody subscribes to the subject: the instance is gone (its record not yet expired).
    NoResponders,
    /// The ack did not come within this.
    AckTimeout(Duration),
    /// The NATS client failed the request (disconnected, closed).
    Request(String),
    /// This runtime has no NATS client, so it cannot call an instance on the NATS plane.
    NoClient,
}

impl NatsFailure {
    /// Whether the instance is at fault (gone or unresponsive), so the caller reports it down.
    #[must_use]
    pub fn reports_down(&self) -> bool {
        matches!(self, Self::NoResponders | Self::AckTimeout(_))
    }
}

impl fmt::Display for NatsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge {
                payload,
                max_payload,
            } => write!(
                f,
                "request of {payload} bytes exceeds the NATS server's max_payload of \
                 {max_payload} bytes (raise max_payload in the nats-server configuration, or \
                 send a smaller request)"
            ),
            Self::NoResponders => f.write_str("no responders (the instance is not subscribed)"),
            Self::AckTimeout(t) => write!(f, "no ack within {t:?}"),
            Self::Request(why) => write!(f, "request failed: {why}"),
            Self::NoClient => f.write_str(
                "the instance serves over the NATS request plane and this runtime has no NATS \
                 client (set NATS_SERVER or DYN_REQUEST_PLANE=nats to call it)",
            ),
        }
    }
}

/// Refuses a request of `payload` bytes for a server whose `max_payload` is `max_payload`
/// (0: not known yet, anything goes). This is the payload alone, a lower bound of what the
/// server counts (headers add to it): it never refuses a request the server would take.
///
/// # Errors
/// [`NatsFailure::PayloadTooLarge`] naming both sizes.
pub fn check_payload(payload: usize, max_payload: usize) -> Result<(), NatsFailure> {
    if max_payload > 0 && payload > max_payload {
        return Err(NatsFailure::PayloadTooLarge {
            payload,
            max_payload,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_check_names_both_sizes_and_allows_the_limit() {
        assert_eq!(check_payload(1024, 1024), Ok(()));
        assert_eq!(check_payload(5, 0), Ok(()));
        let err = check_payload(1025, 1024).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("1025 bytes") && text.contains("1024 bytes"),
            "{text}"
        );
        assert!(!err.reports_down());
        assert!(NatsFailure::NoResponders.reports_down());
    }

    #[test]
    fn headers_are_dynamos() {
        let [(k1, v1), (k2, v2)] = request_headers("abc", 42);
        assert_eq!((k1, v1.as_str()), ("request-id", "abc"));
        assert_eq!((k2, v2.as_str()), ("x-frontend-send-ts-ns", "42"));
    }
}
