//! A ZMQ broker: an XSUB side that publishers connect to and an XPUB side that subscribers
//! connect to, with messages forwarded from the one to the other and subscriptions from the
//! other to the one (what `zmq_proxy(xsub, xpub)` does, and what 1.6.1's broker mode expects).

use std::sync::{Arc, Weak};

use super::endpoint::Endpoint;
use super::pubsub::{ZmqXPub, ZmqXSub};
use super::socket::BindError;
use super::{ZmqConfig, ZmqStats};
use crate::cancel::CancellationToken;
use crate::runtime::Runtime;

/// Where a broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// The endpoint publishers connect to (`tcp://host:port`).
    pub xsub: String,
    /// The endpoint subscribers connect to.
    pub xpub: String,
    /// Socket settings of both sides (`send_hwm` is the per-subscriber high-water mark).
    pub zmq: ZmqConfig,
}

/// A broker that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The XSUB side could not bind.
    #[error("broker XSUB side: {0}")]
    Xsub(BindError),
    /// The XPUB side could not bind.
    #[error("broker XPUB side: {0}")]
    Xpub(BindError),
}

/// A running broker; dropping it (or [`BrokerHandle::close`]) stops it.
pub struct BrokerHandle<R: Runtime> {
    xsub: Arc<ZmqXSub<R>>,
    xpub: Arc<ZmqXPub<R>>,
    xsub_endpoint: Endpoint,
    xpub_endpoint: Endpoint,
    cancel: CancellationToken,
}

impl<R: Runtime> BrokerHandle<R> {
    /// The endpoint publishers connect to (with the port bound).
    pub fn xsub_endpoint(&self) -> &Endpoint {
        &self.xsub_endpoint
    }

    /// The endpoint subscribers connect to.
    pub fn xpub_endpoint(&self) -> &Endpoint {
        &self.xpub_endpoint
    }

    /// Counters of the publisher side (received, dropped because forwarding fell behind).
    pub fn xsub_stats(&self) -> ZmqStats {
        self.xsub.stats()
    }

    /// Counters of the subscriber side (sent, dropped at a full subscriber).
    pub fn xpub_stats(&self) -> ZmqStats {
        self.xpub.stats()
    }

    /// Stops forwarding and closes both sides.
    pub fn close(&self) {
        self.cancel.cancel();
        self.xsub.close();
        self.xpub.close();
    }

    /// Completes when the broker is closed.
    pub async fn closed(&self) {
        self.cancel.cancelled().await
    }
}

impl<R: Runtime> Drop for BrokerHandle<R> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Binds both sides and starts forwarding in the background.
pub async fn run_broker<R: Runtime>(
    rt: &R,
    config: BrokerConfig,
) -> Result<BrokerHandle<R>, BrokerError> {
    let xsub = Arc::new(ZmqXSub::new(rt.clone(), config.zmq.clone()));
    let xpub = Arc::new(ZmqXPub::new(rt.clone(), config.zmq.clone()));
    // Weak: the hook lives inside the XPUB, and must not keep the XSUB alive after the broker.
    let upstream: Weak<ZmqXSub<R>> = Arc::downgrade(&xsub);
    xpub.on_subscription(move |subscribe, prefix| {
        if let Some(xsub) = upstream.upgrade() {
            if subscribe {
                xsub.subscribe(prefix);
            } else {
                xsub.unsubscribe(&prefix);
            }
        }
    });
    let xsub_endpoint = xsub.bind(&config.xsub).await.map_err(BrokerError::Xsub)?;
    let xpub_endpoint = xpub.bind(&config.xpub).await.map_err(BrokerError::Xpub)?;
    tracing::info!(xsub = %xsub_endpoint, xpub = %xpub_endpoint, "ZMQ broker running");
    let cancel = CancellationToken::new();
    let (from, to) = (xsub.clone(), xpub.clone());
    let stop = cancel.clone();
    rt.spawn(async move {
        let forward = async {
            while let Ok(message) = from.recv().await {
                if let Err(e) = to.send(&message) {
                    tracing::warn!(error = %e, "broker: message not forwarded");
                }
            }
        };
        futures_lite::future::or(forward, stop.cancelled()).await;
    });
    Ok(BrokerHandle {
        xsub,
        xpub,
        xsub_endpoint,
        xpub_endpoint,
        cancel,
    })
}
