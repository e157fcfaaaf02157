//! One multiplexed connection per peer address, dialled on first use and again after it fails.
//!
//! Whether a call uses the pooled connection, dials, waits for the dial in flight or fails at
//! once (the last dial failed moments ago) is [`dynrt_core::peers::PeerTable`]'s decision;
//! this file dials, spawns the connection driver and wakes the callers waiting for a dial.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, OpenError};
use dynrt_core::peers::{
    Acquire, DialFailure, DialTicket, PeerConfig, PeerState, PeerTable, PooledConn,
};
use event_listener::Event as Notify;
use futures_lite::future;

use super::client::{MuxClient, ResponseStream};
use super::driver::Driver;
use super::error::CallError;
use super::mailbox;
use super::state::Shared;
use crate::runtime::{self, Runtime};

impl PooledConn for MuxClient {
    fn is_usable(&self) -> bool {
        Self::is_usable(self)
    }
}

/// Keeps one connection per peer and opens request streams on it.
pub struct Connector<R: Runtime> {
    rt: R,
    config: ConnConfig,
    peers: Mutex<PeerTable<MuxClient>>,
    /// Notified whenever a dial ends (or is given up): its waiters look at the table again.
    settled: Notify,
}

/// What a call does after looking at the table.
enum Step {
    Dial(DialTicket),
    Wait(event_listener::EventListener, Instant),
}

impl<R: Runtime> Connector<R> {
    /// A connector whose connections use `config`, with [`PeerConfig::default`]'s dial timing
    /// (a dial gives up after 5 s; after a failed dial, calls to that address fail at once
    /// for 100 ms, doubling with each failure in a row up to 2 s).
    pub fn new(rt: R, config: ConnConfig) -> Self {
        Self::with_dials(rt, config, PeerConfig::default())
    }

    /// A connector whose dials are timed by `dials`.
    pub fn with_dials(rt: R, config: ConnConfig, dials: PeerConfig) -> Self {
        Self {
            rt,
            config,
            peers: Mutex::new(PeerTable::new(dials)),
            settled: Notify::new(),
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
        match self.lock().state(addr) {
            Some(PeerState::Connected { conn, .. }) => Some(conn.clone()),
            _ => None,
        }
    }

    /// The connection to `addr`, dialling one if there is none that is usable.
    pub async fn client(&self, addr: SocketAddr) -> Result<MuxClient, CallError> {
        loop {
            let step = {
                let mut peers = self.lock();
                let now = self.rt.now();
                if peers.poll_timeout().is_some_and(|t| t <= now) {
                    peers.handle_timeout(now);
                }
                match peers.acquire(addr, now) {
                    Acquire::Ready(client) => return Ok(client.clone()),
                    Acquire::Failed(failure) => return Err(failed(addr, failure, now)),
                    Acquire::Dial(ticket) => Step::Dial(ticket),
                    // Listening before the lock is released: a dial that ends after this
                    // point notifies this listener.
                    Acquire::Wait { until, .. } => Step::Wait(self.settled.listen(), until),
                }
            };
            match step {
                Step::Dial(ticket) => return self.dial_and_publish(ticket).await,
                Step::Wait(settled, until) => {
                    future::or(settled, runtime::sleep_until(&self.rt, until)).await;
                }
            }
        }
    }

    /// Dials the address of `ticket` and reports the outcome to the table. If this future is
    /// dropped mid-dial (the caller gave up), the guard reports the dial abandoned, so one of
    /// its waiters dials instead.
    async fn dial_and_publish(&self, ticket: DialTicket) -> Result<MuxClient, CallError> {
        let (addr, deadline) = (ticket.addr(), ticket.deadline());
        let mut guard = DialGuard {
            connector: self,
            ticket: Some(ticket),
        };
        let result = self.dial(addr, deadline).await;
        let ticket = guard
            .ticket
            .take()
            .expect("the guard holds the ticket until here");
        {
            let mut peers = self.lock();
            let now = self.rt.now();
            // Not pooled if the table stopped waiting for this dial (forgotten, timed out):
            // the connection is then this caller's alone.
            let _pooled = match &result {
                Ok(client) => peers.handle_connected(ticket, client.clone(), now),
                Err(CallError::Connect { reason, .. }) => {
                    peers.handle_failed(ticket, reason.as_str(), now)
                }
                Err(other) => peers.handle_failed(ticket, other.to_string(), now),
            };
        }
        self.settled.notify(usize::MAX);
        result
    }

    /// Drops the connection to `addr` from the pool (its open streams continue), and forgets
    /// a failed dial of it.
    pub fn forget(&self, addr: SocketAddr) {
        self.lock().forget(addr);
    }

    fn lock(&self) -> MutexGuard<'_, PeerTable<MuxClient>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn dial(&self, addr: SocketAddr, deadline: Instant) -> Result<MuxClient, CallError> {
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
                    format!(
                        "no answer within {:?}",
                        self.lock().config().connect_timeout
                    ),
                );
                return Err(CallError::connect(addr, &timeout));
            }
        };
        let conn = Conn::client(self.config.clone(), self.rt.now())
            .map_err(|e| CallError::Disconnected(format!("bad connection settings: {e}")))?;
        let batch = mailbox::release_batch(self.config.stream_credit, self.config.conn_credit);
        let shared = Shared::client(conn, batch);
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

/// The error of a call that found its address failing: the last dial's reason, how many
/// failed in a row and when the next dial may go out.
fn failed(addr: SocketAddr, failure: &DialFailure, now: Instant) -> CallError {
    let wait = failure.retry_at.saturating_duration_since(now);
    CallError::Connect {
        addr,
        reason: format!(
            "{} ({} dial(s) failed in a row; the next in {} ms)",
            failure.error,
            failure.failures,
            wait.as_millis()
        ),
    }
}

/// Reports a dial given up (its future dropped before the outcome was reported), waking
/// whoever waits for it.
struct DialGuard<'a, R: Runtime> {
    connector: &'a Connector<R>,
    ticket: Option<DialTicket>,
}

impl<R: Runtime> Drop for DialGuard<'_, R> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let now = self.connector.rt.now();
        let _current = self.connector.lock().handle_abandoned(ticket, now);
        self.connector.settled.notify(usize::MAX);
    }
}
