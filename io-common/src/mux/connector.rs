//! One multiplexed connection per peer address, dialled on first use and again after it fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, OpenError};
use event_listener::Event as Notify;
use futures_lite::future;

use super::client::{MuxClient, ResponseStream};
use super::driver::Driver;
use super::error::CallError;
use super::state::Shared;
use crate::runtime::{self, Runtime};

enum Slot {
    Ready(MuxClient),
    Connecting(Arc<Notify>),
}

/// Keeps one connection per peer and opens request streams on it.
pub struct Connector<R: Runtime> {
    rt: R,
    config: ConnConfig,
    connect_timeout: Duration,
    peers: Mutex<HashMap<SocketAddr, Slot>>,
}

impl<R: Runtime> Connector<R> {
    /// A connector whose connections use `config`, giving up on a dial after 5 s.
    pub fn new(rt: R, config: ConnConfig) -> Self {
        Self {
            rt,
            config,
            connect_timeout: Duration::from_secs(5),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request to `route` on the peer at `addr`, dialling if there is no usable
    /// connection. A connection that is going away is replaced once.
    pub async fn call(
        &self,
        addr: SocketAddr,
        route: &str,
        header: Bytes,
        payload: Bytes,
    ) -> Result<ResponseStream, CallError> {
        // The pooled connection as it is: one that went away refuses the call, and the retry
        // below looks again (and dials). Checking it first would cost a lock on the
        // connection per call.
        let client = match self.pooled(addr) {
            Some(client) => client,
            None => self.client(addr).await?,
        };
        match client.call(route, header.clone(), payload.clone()).await {
            Err(CallError::Open(OpenError::GoingAway | OpenError::Closed))
            | Err(CallError::Disconnected(_)) => {
                self.client(addr).await?.call(route, header, payload).await
            }
            other => other,
        }
    }

    /// The pooled connection to `addr`, usable or not.
    fn pooled(&self, addr: SocketAddr) -> Option<MuxClient> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&addr) {
            Some(Slot::Ready(client)) => Some(client.clone()),
            _ => None,
        }
    }

    /// The connection to `addr`, dialling one if there is none that is usable.
    pub async fn client(&self, addr: SocketAddr) -> Result<MuxClient, CallError> {
        loop {
            let wait = {
                let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
                match peers.get(&addr) {
                    Some(Slot::Ready(client)) if client.is_usable() => return Ok(client.clone()),
                    Some(Slot::Connecting(done)) => Ok(done.listen()),
                    _ => {
                        let done = Arc::new(Notify::new());
                        peers.insert(addr, Slot::Connecting(done.clone()));
                        Err(done)
                    }
                }
            };
            match wait {
                Ok(listener) => listener.await,
                Err(slot) => return self.dial_and_publish(addr, slot).await,
            }
        }
    }

    /// Dials `addr` (this task owns its `Connecting` slot) and publishes the outcome. If this
    /// future is dropped mid-dial (the caller gave up), the guard frees the slot and wakes the
    /// tasks waiting on it, so one of them dials instead of every later call waiting forever.
    async fn dial_and_publish(
        &self,
        addr: SocketAddr,
        slot: Arc<Notify>,
    ) -> Result<MuxClient, CallError> {
        let mut guard = ConnectingGuard {
            peers: &self.peers,
            addr,
            slot,
            armed: true,
        };
        let result = self.dial(addr).await;
        guard.armed = false;
        {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            // Publish only into this dial's own slot: `forget` may have removed it mid-dial
            // (the result is then this caller's alone, not pooled), and another dial may own
            // a newer one.
            let own = matches!(
                peers.get(&addr),
                Some(Slot::Connecting(done)) if Arc::ptr_eq(done, &guard.slot)
            );
            if own {
                match &result {
                    Ok(client) => peers.insert(addr, Slot::Ready(client.clone())),
                    Err(_) => peers.remove(&addr),
                };
            }
        }
        // Always wake this dial's waiters, whether or not the slot was still there: they
        // listen on this dial's own event, and a forgotten slot would otherwise leave them
        // waiting forever (they look again and dial themselves if nothing is pooled).
        guard.slot.notify(usize::MAX);
        result
    }

    /// Drops the connection to `addr` from the pool (its open streams continue).
    pub fn forget(&self, addr: SocketAddr) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
    }

    async fn dial(&self, addr: SocketAddr) -> Result<MuxClient, CallError> {
        let deadline = self.rt.now() + self.connect_timeout;
        let tcp = future::or(async { Some(self.rt.connect(addr).await) }, async {
            runtime::sleep_until(&self.rt, deadline).await;
            None
        })
        .await;
        let tcp = match tcp {
            Some(Ok(tcp)) => tcp,
            Some(Err(e)) => return Err(CallError::connect(addr, &e)),
            None => {
                let timeout = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.connect_timeout),
                );
                return Err(CallError::connect(addr, &timeout));
            }
        };
        let conn = Conn::client(self.config.clone(), self.rt.now())
            .map_err(|e| CallError::Disconnected(format!("bad connection settings: {e}")))?;
        let shared = Shared::new(conn);
        self.rt.spawn(Driver::new(
            self.rt.clone(),
            shared.clone(),
            tcp,
            BytesMut::new(),
            None,
        ));
        Ok(MuxClient { shared })
    }
}

/// Frees a `Connecting` slot whose dial was abandoned (its future dropped before the outcome
/// was published), waking whoever waits on it.
struct ConnectingGuard<'a> {
    peers: &'a Mutex<HashMap<SocketAddr, Slot>>,
    addr: SocketAddr,
    slot: Arc<Notify>,
    armed: bool,
}

impl Drop for ConnectingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        // Only this dial's own slot: `forget` may have removed it, and another dial may own
        // a newer one.
        if let Some(Slot::Connecting(done)) = peers.get(&self.addr)
            && Arc::ptr_eq(done, &self.slot)
        {
            peers.remove(&self.addr);
        }
        drop(peers);
        self.slot.notify(usize::MAX);
    }
}
