//! Making sure the server has processed a subscription before saying it is made.
//!
//! async-nats's `subscribe` returns once the SUB is queued for its connection task, and its
//! `flush` once the socket buffer is empty: neither means the server has seen it. A peer on
//! another connection (which the server serves independently) that publishes right after
//! would then be unheard, and a request would get "no responders". The server handles one
//! connection's commands in order, so a message published to a fresh inbox after the SUB
//! coming back proves the SUB was processed.

use std::time::Duration;

use futures_lite::StreamExt;

use crate::runtime::Clock;

/// How long the server may take to confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns once the server has processed every command this client sent before. While the
/// client is disconnected it returns at once: async-nats sends the subscriptions again when it
/// reconnects, and nothing published meanwhile could have reached them anyway. Runs on tokio
/// (the bridge), bounded by the runtime's `clock`.
pub(crate) async fn confirm_processed(
    client: &async_nats::Client,
    clock: &Clock,
) -> Result<(), String> {
    if client.connection_state() != async_nats::connection::State::Connected {
        tracing::debug!("NATS disconnected: the subscription takes effect at the reconnect");
        return Ok(());
    }
    let inbox = client.new_inbox();
    let mut probe = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let echoed = clock.bridge_timeout(CONFIRM_TIMEOUT, probe.next()).await;
    let _ = probe.unsubscribe().await;
    match echoed {
        Some(Some(_)) => Ok(()),
        Some(None) => Err("the connection closed before the server confirmed it".into()),
        None => Err(format!(
            "the server did not confirm it within {CONFIRM_TIMEOUT:?}"
        )),
    }
}
