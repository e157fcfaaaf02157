//! The demo's token generator: a streaming handler that echoes the words of a prompt.

use bytes::Bytes;
use futures_lite::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::mux::{BoxItemStream, Handler, HandlerError, RequestContext, handler_fn};

/// Tokens per request when the request does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 16;
/// The most tokens one request may ask for (a bound on what a remote caller can make a
/// worker do).
pub const MAX_TOKENS_LIMIT: u32 = 1 << 20;

/// A request to the generator, sent as JSON text:
/// `{"prompt": "hi there", "max_tokens": 3}` (`max_tokens` may be left out:
/// [`DEFAULT_MAX_TOKENS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The words to echo.
    pub prompt: String,
    /// How many tokens to answer with.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_max_tokens() -> u32 {
    DEFAULT_MAX_TOKENS
}

impl GenerateRequest {
    /// The request as the JSON bytes the generator reads.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a string and a number always serialise"))
    }
}

/// The generator: reads a [`GenerateRequest`] from the payload (JSON) and streams
/// `max_tokens` response items, each one word of the prompt as UTF-8 text, cycling through
/// the words (`"hi there"`, 3 → `hi`, `there`, `hi`); an empty prompt yields `token`. A
/// payload that is not such a request ends the stream with an `InvalidRequest` error that
/// shows the expected shape. It stops early when the caller stops the request.
pub fn generate_handler() -> impl Handler {
    handler_fn(|payload: Bytes, context: RequestContext| -> BoxItemStream {
        let request = match parse(&payload) {
            Ok(request) => request,
            Err(e) => return Box::pin(stream::once(Err(e))),
        };
        let mut words: Vec<Bytes> = request
            .prompt
            .split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        if words.is_empty() {
            words.push(Bytes::from_static(b"token"));
        }
        let tokens =
            (0..request.max_tokens as usize).map(move |i| Ok(words[i % words.len()].clone()));
        Box::pin(stream::iter(tokens).take_while(move |_| !context.is_stopped()))
    })
}

fn parse(payload: &[u8]) -> Result<GenerateRequest, HandlerError> {
    let request: GenerateRequest = serde_json::from_slice(payload).map_err(|e| {
        HandlerError::invalid_request(format!(
            "expected JSON {{\"prompt\": \"...\", \"max_tokens\": N}}: {e}"
        ))
    })?;
    if request.max_tokens > MAX_TOKENS_LIMIT {
        return Err(HandlerError::invalid_request(format!(
            "max_tokens {} is above the limit of {MAX_TOKENS_LIMIT}",
            request.max_tokens
        )));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::ErrorKind;
    use bytes::Bytes;

    fn run(payload: &str) -> Vec<Result<Bytes, HandlerError>> {
        let handler = generate_handler();
        let stream = handler.handle(
            Bytes::copy_from_slice(payload.as_bytes()),
            RequestContext::local(Bytes::new()),
        );
        futures_lite::future::block_on(stream.collect())
    }

    #[test]
    fn generator_cycles_through_the_words_of_the_prompt() {
        let items: Vec<_> = run(r#"{"prompt":"hi there","max_tokens":3}"#)
            .into_iter()
            .map(|i| i.unwrap())
            .collect();
        assert_eq!(
            items,
            [b"hi".as_slice(), b"there", b"hi"].map(Bytes::from_static)
        );
        assert_eq!(run(r#"{"prompt":""}"#).len(), DEFAULT_MAX_TOKENS as usize);
        assert_eq!(
            run(r#"{"prompt":"", "max_tokens": 1}"#)[0],
            Ok(Bytes::from_static(b"token"))
        );
    }

    #[test]
    fn generator_refuses_what_is_not_a_request() {
        for bad in [
            "",
            "nope",
            r#"{"max_tokens":3}"#,
            r#"{"prompt":"a","max_tokens":2000000}"#,
        ] {
            let items = run(bad);
            assert_eq!(items.len(), 1, "{bad}");
            let err = items[0].clone().unwrap_err();
            assert_eq!(err.kind, ErrorKind::INVALID_REQUEST, "{bad}");
        }
    }

    #[test]
    fn request_round_trips_through_json() {
        let request = GenerateRequest {
            prompt: "a b".into(),
            max_tokens: 2,
        };
        let parsed = parse(&request.to_json()).unwrap();
        assert_eq!(parsed, request);
    }
}
