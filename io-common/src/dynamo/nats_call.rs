//! Calling a worker on Dynamo's NATS request plane: the request goes out as one NATS request
//! to the instance's subject, the reply is the ack, and the answer comes back over call-home
//! TCP to this runtime's response-stream server, as on the TCP plane.

use async_nats::HeaderMap;
use bytes::Bytes;
use dynrt_core::wire::dynamo::nats::{check_payload, request_headers};
use dynrt_core::wire::dynamo::{AckFrame, PayloadCodec};

use super::caller::{ack_result, send_ts_ns};
use super::nats_link::NatsLink;
use super::{DynamoCaller, DynamoStream};
use crate::mux::CallError;
use crate::runtime::Runtime;

impl<R: Runtime> DynamoCaller<R> {
    /// Sends `body` (already in `codec`) to the worker subscribed to `subject` over `nats` and
    /// returns the stream of its answer.
    ///
    /// # Errors
    /// [`CallError::Nats`] when the request was not taken: larger than the server's
    /// `max_payload` (refused before sending, naming both sizes), nobody subscribed, no ack in
    /// time (`DYN_TCP_REQUEST_TIMEOUT`'s bound, as on the TCP plane), or the client failed; a
    /// refusing ack as on the TCP plane.
    pub async fn call_nats(
        &self,
        nats: &NatsLink,
        subject: &str,
        request_id: &str,
        codec: PayloadCodec,
        body: Bytes,
    ) -> Result<DynamoStream, CallError> {
        let failed = |failure| CallError::Nats {
            subject: subject.to_owned(),
            failure,
        };
        let (stream, payload) = self.prepare(request_id, codec, body).await?;
        check_payload(payload.len(), nats.max_payload()).map_err(failed)?;
        let mut headers = HeaderMap::new();
        for (name, value) in request_headers(request_id, send_ts_ns()) {
            headers.insert(name, value.as_str());
        }
        let reply = nats
            .request(subject.to_owned(), headers, payload, self.ack_timeout())
            .await
            .map_err(failed)?;
        ack_result(&AckFrame::from_bytes(reply))?;
        Ok(stream)
    }
}
