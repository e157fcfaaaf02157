//! The caller's response-stream server: workers connect here to stream their answers.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::value::Received;
use dynrt_core::callhome::{
    CallHomeConfig, CallHomeError, CallerEvent, CallerStream, Cancel, PendingEvent, PendingStreams,
};
use dynrt_core::wire::dynamo::PayloadCodec;
use dynrt_core::wire::mux::{ErrorKind, StreamError};
use futures_lite::future;

use super::sock::{Sock, until};
use crate::mux::CallError;
use crate::runtime::{self, Runtime};

/// What a call-home connection hands to the caller's stream.
pub(super) enum Msg {
    Item(Bytes),
    End(Result<(), CallError>),
}

/// What a registered call waits with: where its items go, where its cancels come from.
pub(super) struct Sink {
    pub(super) items: async_channel::Sender<Msg>,
    pub(super) cancel: async_channel::Receiver<Cancel>,
    pub(super) codec: PayloadCodec,
}

/// Most calls waiting for their worker at once.
const MAX_PENDING: usize = 65_536;

/// The subjects of this runtime's calls that wait for their worker.
pub(super) struct Registry {
    pending: Mutex<PendingStreams<Sink>>,
}

impl Registry {
    pub(super) fn new(config: &CallHomeConfig) -> Self {
        Self {
            pending: Mutex::new(PendingStreams::new(config.establish_timeout, MAX_PENDING)),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, PendingStreams<Sink>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Binds `addr` and serves call-home connections in the background; returns the bound address.
pub(super) async fn start<R: Runtime>(
    rt: &R,
    addr: SocketAddr,
    registry: Arc<Registry>,
    config: CallHomeConfig,
) -> io::Result<SocketAddr> {
    let listener = rt.bind(addr).await?;
    let local = R::local_addr(&listener)?;
    tracing::info!(%local, "Dynamo response-stream server listening");
    let secs = config.establish_timeout.as_secs();
    rt.spawn(expire_loop(rt.clone(), Arc::downgrade(&registry), secs));
    // Both loops hold the registry weakly: when the runtime (and its caller) is dropped, the
    // server stops accepting and its port is released.
    rt.spawn(accept_loop(
        rt.clone(),
        listener,
        Arc::downgrade(&registry),
        config,
    ));
    Ok(local)
}

/// Fails calls whose worker never connected back (the registry's establish timeout).
async fn expire_loop<R: Runtime>(rt: R, registry: std::sync::Weak<Registry>, secs: u64) {
    loop {
        let next = {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let mut pending = registry.lock();
            pending.handle_timeout(rt.now());
            while let Some(PendingEvent::Expired { subject, value }) = pending.poll_event() {
                let _ = value
                    .items
                    .try_send(Msg::End(Err(CallError::Timeout(format!(
                        "the worker did not connect back within {secs} s (subject {subject})"
                    )))));
            }
            pending.poll_timeout()
        };
        // Wake at the next deadline, and at least every second to notice the runtime is gone.
        let cap = rt.now() + Duration::from_secs(1);
        runtime::sleep_until(&rt, next.map_or(cap, |t| t.min(cap))).await;
    }
}

async fn accept_loop<R: Runtime>(
    rt: R,
    listener: R::Listener,
    registry: std::sync::Weak<Registry>,
    config: CallHomeConfig,
) {
    loop {
        // A connection already waiting is taken without arming a timer (one per call-home
        // connection otherwise); while idle, look at the registry at least every second.
        let accepted = match future::poll_once(runtime::accept::<R>(&listener)).await {
            Some(accepted) => Some(accepted),
            None => {
                future::or(
                    async { Some(runtime::accept::<R>(&listener).await) },
                    async {
                        runtime::sleep_until(&rt, rt.now() + Duration::from_secs(1)).await;
                        None
                    },
                )
                .await
            }
        };
        let Some(registry) = registry.upgrade() else {
            tracing::info!("Dynamo response-stream server stopped (its runtime is gone)");
            return;
        };
        let Some(accepted) = accepted else { continue };
        match accepted {
            Ok((tcp, _peer)) => {
                if let Err(e) = R::set_linger_zero(&tcp) {
                    tracing::warn!(error = %e, "cannot set SO_LINGER 0 on a call-home socket");
                }
                rt.spawn(serve_stream(
                    rt.clone(),
                    tcp,
                    registry.clone(),
                    config.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "response-stream server cannot accept");
                runtime::sleep_until(&rt, rt.now() + Duration::from_millis(50)).await;
            }
        }
    }
}

enum Turn {
    Read(Read),
    Cancel(Cancel),
    Timeout,
}

/// What a read of the call-home socket gave: an end of stream and a failed socket differ for a
/// stopped call (see `CallerStream::handle_reset`).
enum Read {
    Data,
    End,
    Failed,
}

/// Drives one call-home connection until its stream ends.
async fn serve_stream<R: Runtime>(
    rt: R,
    tcp: R::Tcp,
    registry: Arc<Registry>,
    config: CallHomeConfig,
) {
    let mut sock = Sock::<R>::new(tcp, BytesMut::new());
    let mut caller = CallerStream::new(config, rt.now());
    let mut sink: Option<Sink> = None;
    // Set once the caller's stream has its end (an error item ends it before the wire does).
    let mut ended = false;
    loop {
        let now = rt.now();
        let _ = caller.poll_transmit(&mut sock.out);
        if sock.flush().await.is_err() {
            caller.handle_reset(now);
        }
        while let Some(event) = caller.poll_event() {
            match event {
                CallerEvent::Handshake { subject } => {
                    match registry.lock().claim(&subject) {
                        Some(s) => {
                            caller.accept(s.codec, now);
                            sink = Some(s);
                            // The prologue may have arrived with the handshake.
                            caller.handle_input(&mut sock.rbuf, now);
                        }
                        None => {
                            tracing::warn!(%subject, "call-home for an unknown subject");
                            caller.reject();
                        }
                    }
                }
                CallerEvent::Accepted => {}
                CallerEvent::Item(received) => match received {
                    Received::Data(bytes) if !ended => {
                        let delivered = match &sink {
                            Some(s) => s.items.send(Msg::Item(bytes)).await.is_ok(),
                            None => false,
                        };
                        if !delivered {
                            // The caller dropped its stream: the worker stops working.
                            caller.cancel(Cancel::Kill);
                            ended = true;
                        }
                    }
                    Received::Error { class, message } if !ended => {
                        let kind =
                            ErrorKind::from_dynamo_name(&class).unwrap_or(ErrorKind::INTERNAL);
                        end(
                            &sink,
                            Err(CallError::Stream(StreamError::new(kind, message))),
                        )
                        .await;
                        ended = true;
                    }
                    _ => {}
                },
                CallerEvent::Refused { error, typed_error } => {
                    let kind = typed_error
                        .as_ref()
                        .and_then(|t| t.class.as_deref().or(t.error_type.as_deref()))
                        .and_then(ErrorKind::from_dynamo_name)
                        .unwrap_or(ErrorKind::INTERNAL);
                    if !ended {
                        end(&sink, Err(CallError::Stream(StreamError::new(kind, error)))).await;
                        ended = true;
                    }
                }
                CallerEvent::Finished { .. } => {
                    if !ended {
                        end(&sink, Ok(())).await;
                        ended = true;
                    }
                }
                CallerEvent::Failed(e) => {
                    if !ended {
                        end(&sink, Err(call_error(e))).await;
                        ended = true;
                    }
                }
            }
        }
        if caller.is_closed() {
            let _ = caller.poll_transmit(&mut sock.out);
            let _ = sock.flush().await;
            sock.close().await;
            return;
        }
        let deadline = caller.poll_timeout();
        let read = async {
            Turn::Read(match sock.read().await {
                Ok(0) => Read::End,
                Ok(_) => Read::Data,
                Err(_) => Read::Failed,
            })
        };
        let turn = match &sink {
            Some(s) => {
                let cancel = async {
                    // A closed channel means the caller dropped its stream: kill.
                    Turn::Cancel(s.cancel.recv().await.unwrap_or(Cancel::Kill))
                };
                until(&rt, deadline, future::or(read, cancel)).await
            }
            None => until(&rt, deadline, read).await,
        }
        .unwrap_or(Turn::Timeout);
        let now = rt.now();
        match turn {
            Turn::Read(Read::Data) => caller.handle_input(&mut sock.rbuf, now),
            Turn::Read(Read::End) => caller.handle_eof(now),
            Turn::Read(Read::Failed) => caller.handle_reset(now),
            Turn::Cancel(how) => {
                caller.cancel(how);
            }
            Turn::Timeout => caller.handle_timeout(now),
        }
    }
}

async fn end(sink: &Option<Sink>, result: Result<(), CallError>) {
    if let Some(s) = sink {
        let _ = s.items.send(Msg::End(result)).await;
    }
}

/// A call-home failure as the caller sees it.
pub(super) fn call_error(e: CallHomeError) -> CallError {
    match e {
        CallHomeError::HandshakeTimeout { .. }
        | CallHomeError::EstablishTimeout { .. }
        | CallHomeError::PrologueTimeout { .. }
        | CallHomeError::AckTimeout { .. } => CallError::Timeout(e.to_string()),
        CallHomeError::Truncated | CallHomeError::Closed(_) => {
            CallError::Disconnected(e.to_string())
        }
        other => CallError::Stream(StreamError::new(
            ErrorKind::BACKEND_PROTOCOL,
            other.to_string(),
        )),
    }
}
