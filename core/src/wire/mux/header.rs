//! The REQUEST header: a small serde struct, msgpack with field names, decoded only on demand.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{MuxDecodeError, MuxEncodeError, Request};

/// What a REQUEST frame says about the request besides route and payload.
///
/// On the wire it is a msgpack map with field names (rmp-serde `to_vec_named`), so fields can be
/// added later: unknown fields are ignored when decoding and absent optional fields take their
/// defaults. The frame decoder never parses it; call [`RequestHeader::from_msgpack`] (or
/// [`Request::decode_header`]) when the header is needed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestHeader {
    /// The request id (Dynamo's `request-id`), for logs and tracing.
    #[serde(default)]
    pub request_id: String,
    /// A label saying how the payload and the response items are encoded: `"json"` or
    /// `"msgpack"` (Dynamo's `payload_codec` names). Nothing on the mux converts the bytes;
    /// absent means unlabelled (whatever the endpoint and its callers agree on: `dynrt call`
    /// sends JSON text unlabelled). See "Contracts" in [`crate::conn`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_codec: Option<String>,
    /// How long the caller is prepared to wait, in milliseconds, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Other headers: trace context (`traceparent`, …), `x-frontend-send-ts-ns`, and the like.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl RequestHeader {
    /// A header with just a request id.
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            ..Self::default()
        }
    }

    /// Encodes the header as msgpack with field names.
    pub fn to_msgpack(&self) -> Result<Bytes, MuxEncodeError> {
        rmp_serde::to_vec_named(self)
            .map(Bytes::from)
            .map_err(|e| MuxEncodeError::Serialize {
                what: "REQUEST header",
                reason: e.to_string(),
            })
    }

    /// Decodes a header from msgpack.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, MuxDecodeError> {
        rmp_serde::from_slice(bytes).map_err(|e| MuxDecodeError::InvalidHeader {
            reason: e.to_string(),
        })
    }
}

impl Request {
    /// Parses this request's msgpack header.
    pub fn decode_header(&self) -> Result<RequestHeader, MuxDecodeError> {
        RequestHeader::from_msgpack(&self.header)
    }
}
