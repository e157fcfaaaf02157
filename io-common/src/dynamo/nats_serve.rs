//! Serving one endpoint instance on Dynamo's NATS request plane: subscribe to its subject,
//! answer each request message with the ack, and stream the answer over call-home TCP as on
//! the TCP plane.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_nats::Message;
use dynrt_core::wire::dynamo::nats::QUEUE_GROUP;
use futures_lite::{StreamExt, future};

use super::DynamoServeConfig;
use super::nats_link::NatsLink;
use super::serve::accept_payload;
use crate::cancel::CancellationToken;
use crate::mux::Handler;
use crate::runtime::{Clock, Runtime};

/// What one subscription serves.
pub struct NatsServe<R: Runtime> {
    /// Runs the handlers and the call-home connections.
    pub rt: R,
    /// The connection the subscription lives on.
    pub nats: NatsLink,
    /// The instance's subject.
    pub subject: String,
    /// The endpoint's handler.
    pub handler: Arc<dyn Handler>,
    /// Limits and timeouts (the message limit bounds each request).
    pub config: DynamoServeConfig,
    /// Requests being answered, shared by every subscription of the runtime.
    pub in_flight: Arc<AtomicUsize>,
}

impl<R: Runtime> NatsServe<R> {
    /// Subscribes, then serves in the background until `stop` is cancelled (then it
    /// unsubscribes) or the client closes. async-nats restores the subscription after a
    /// reconnect.
    ///
    /// # Errors
    /// The subscription could not be made (the text names the subject).
    pub async fn start(self, stop: CancellationToken) -> Result<(), String> {
        let mut subscriber = self
            .nats
            .queue_subscribe(self.subject.clone(), QUEUE_GROUP)
            .await?;
        // The subscription is in effect once the server has processed it: a caller that found
        // the record must not get "no responders" (CI saw exactly that after a mere flush).
        let client = self.nats.client().clone();
        let clock = Clock::of(&self.rt);
        self.nats
            .tokio()
            .spawn(async move { crate::nats::confirm_processed(&client, &clock).await })
            .await
            .map_err(|e| format!("subscription check task failed: {e}"))?
            .map_err(|e| format!("subscribing to {}: {e}", self.subject))?;
        tracing::info!(subject = %self.subject, "serving on the NATS request plane");
        let tokio = self.nats.tokio().clone();
        tokio.spawn(async move {
            loop {
                let next = future::or(async { Some(subscriber.next().await) }, async {
                    stop.cancelled().await;
                    None
                })
                .await;
                match next {
                    Some(Some(message)) => self.handle(message).await,
                    Some(None) => {
                        tracing::info!(subject = %self.subject, "NATS subscription ended");
                        return;
                    }
                    None => {
                        let _ = subscriber.unsubscribe().await;
                        tracing::info!(subject = %self.subject, "NATS subscription stopped");
                        return;
                    }
                }
            }
        });
        Ok(())
    }

    /// Starts one request's answer and replies with its ack.
    async fn handle(&self, message: Message) {
        let headers: BTreeMap<String, String> = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .filter_map(|(name, values)| {
                values
                    .first()
                    .map(|v| (name.to_string(), v.as_str().to_owned()))
            })
            .collect();
        let ack = accept_payload(
            &self.rt,
            &self.subject,
            self.handler.clone(),
            headers,
            message.payload,
            &self.config,
            &self.in_flight,
        );
        let Some(reply) = message.reply else {
            tracing::warn!(subject = %self.subject, "NATS request without a reply subject");
            return;
        };
        if let Err(e) = self.nats.client().publish(reply, ack.data().clone()).await {
            tracing::warn!(subject = %self.subject, error = %e, "cannot send a NATS ack");
        }
    }
}
