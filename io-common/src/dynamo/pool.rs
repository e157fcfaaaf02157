//! Pooled request connections to Dynamo workers: request frames out, acks back in order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use dynrt_core::callhome::{AckEvent, CallHomeConfig, CallHomeError, RequestSender};
use dynrt_core::wire::dynamo::{AckFrame, RequestFrame};
use futures_lite::future;

use super::response_server::call_error;
use super::sock::{Sock, until};
use crate::mux::CallError;
use crate::runtime::Runtime;

/// Request connections kept per worker address (1.6.1 keeps up to 100; acks are tiny, so a
/// few connections carry any load).
const POOL_SIZE: usize = 4;
/// How long dialling a worker may take (1.6.1's `DYN_TCP_CONNECT_TIMEOUT` default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = async_channel::Sender<Result<AckFrame, CallHomeError>>;

struct Conn {
    submit: async_channel::Sender<(RequestFrame, Reply)>,
    in_flight: AtomicUsize,
    closed: AtomicBool,
}

/// The request connections of one runtime, by worker address.
pub(super) struct Pool<R: Runtime> {
    rt: R,
    config: CallHomeConfig,
    hosts: Mutex<HashMap<SocketAddr, Vec<Arc<Conn>>>>,
}

impl<R: Runtime> Pool<R> {
    pub(super) fn new(rt: R, config: CallHomeConfig) -> Self {
        Self {
            rt,
            config,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `frame` to the worker at `addr` and waits for its ack.
    pub(super) async fn send(
        &self,
        addr: SocketAddr,
        frame: RequestFrame,
    ) -> Result<AckFrame, CallError> {
        let conn = self.conn(addr).await?;
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let (reply, answer) = async_channel::bounded(1);
        let result = match conn.submit.send((frame, reply)).await {
            Ok(()) => match answer.recv().await {
                Ok(Ok(ack)) => Ok(ack),
                Ok(Err(e)) => Err(call_error(e)),
                Err(_) => Err(CallError::Disconnected(format!(
                    "request connection to {addr} closed"
                ))),
            },
            // The pooled connection closed before it took the request: nothing was written,
            // so this is a refusal a caller may retry elsewhere, not a lost request.
            Err(_) => Err(CallError::Open(dynrt_core::conn::OpenError::Closed)),
        };
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// An idle pooled connection, a new one while the pool has room, else the least busy.
    async fn conn(&self, addr: SocketAddr) -> Result<Arc<Conn>, CallError> {
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            let conns = hosts.entry(addr).or_default();
            conns.retain(|c| !c.closed.load(Ordering::Acquire));
            let least = conns
                .iter()
                .min_by_key(|c| c.in_flight.load(Ordering::Acquire))
                .cloned();
            match least {
                Some(c) if c.in_flight.load(Ordering::Acquire) == 0 || conns.len() >= POOL_SIZE => {
                    return Ok(c);
                }
                _ => {}
            }
        }
        let tcp = match until(
            &self.rt,
            Some(self.rt.now() + CONNECT_TIMEOUT),
            self.rt.connect(addr),
        )
        .await
        {
            Some(Ok(tcp)) => tcp,
            Some(Err(e)) => return Err(CallError::connect(addr, &e)),
            None => {
                return Err(CallError::Connect {
                    addr,
                    reason: format!("timed out after {} s", CONNECT_TIMEOUT.as_secs()),
                });
            }
        };
        let (submit, requests) = async_channel::bounded(256);
        let conn = Arc::new(Conn {
            submit,
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        self.rt.spawn(drive::<R>(
            self.rt.clone(),
            tcp,
            requests,
            conn.clone(),
            self.config.clone(),
        ));
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr)
            .or_default()
            .push(conn.clone());
        Ok(conn)
    }
}

enum Turn {
    Read(bool),
    Submit(Option<(RequestFrame, Reply)>),
    Timeout,
}

/// Drives one request connection until it fails or the pool forgets it.
async fn drive<R: Runtime>(
    rt: R,
    tcp: R::Tcp,
    requests: async_channel::Receiver<(RequestFrame, Reply)>,
    conn: Arc<Conn>,
    config: CallHomeConfig,
) {
    let mut sock = Sock::<R>::new(tcp, BytesMut::new());
    let mut sender = RequestSender::new(config);
    let mut waiting: HashMap<u64, Reply> = HashMap::new();
    loop {
        let now = rt.now();
        let _ = sender.poll_transmit(&mut sock.out);
        if sock.flush().await.is_err() {
            sender.handle_eof(now);
        }
        while let Some(event) = sender.poll_event() {
            let (token, result) = match event {
                AckEvent::Acked { token, ack } => (token, Ok(ack)),
                AckEvent::Failed { token, error } => (token, Err(error)),
            };
            if let Some(reply) = waiting.remove(&token) {
                let _ = reply.try_send(result);
            }
        }
        if let Some(e) = sender.closed() {
            tracing::debug!(error = %e, "Dynamo request connection closed");
            conn.closed.store(true, Ordering::Release);
            requests.close();
            while let Ok((_, reply)) = requests.try_recv() {
                let _ = reply.try_send(Err(e.clone()));
            }
            return;
        }
        let deadline = sender.poll_timeout();
        let read = async { Turn::Read(matches!(sock.read().await, Ok(n) if n > 0)) };
        let submit = async { Turn::Submit(requests.recv().await.ok()) };
        let turn = until(&rt, deadline, future::or(read, submit))
            .await
            .unwrap_or(Turn::Timeout);
        let now = rt.now();
        match turn {
            Turn::Read(true) => sender.handle_input(&mut sock.rbuf, now),
            Turn::Read(false) => sender.handle_eof(now),
            Turn::Submit(Some((frame, reply))) => match sender.send(frame, now) {
                Ok(token) => {
                    waiting.insert(token, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            },
            // Every sender is gone: the pool was dropped with the runtime.
            Turn::Submit(None) => return,
            Turn::Timeout => sender.handle_timeout(now),
        }
    }
}
