//! The lease driver: executes [`Lease`]'s commands with etcd-client and feeds the results back.
//!
//! One task on the etcd runtime. Each turn: run the machine's commands (a grant or a revoke as a
//! bounded call; a keep-alive as one message on the `LeaseKeeper` stream, opening the stream
//! first when there is none), hand its events on (the granted id to `connect`, loss to
//! [`KvBackend::lease_lost`](crate::discovery::KvBackend::lease_lost)), then wait for whichever
//! comes first: the machine's deadline, a grant or stream-opening result, a keep-alive answer, a
//! keep-alive left unanswered too long, or shutdown.

use std::collections::VecDeque;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dynrt_core::kv::LeaseId;
use dynrt_core::lease::{Lease, LeaseCommand, LeaseEvent, LostReason};
use etcd_client::{LeaseGrantResponse, LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::oneshot;

use super::{Shared, describe, is_lease_not_found, lock, stopped};
use crate::discovery::StoreError;
use crate::runtime::Clock;

type Pending<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// An open keep-alive stream.
struct Keeper {
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
    /// When each keep-alive sent on this stream and not yet answered was sent.
    sent: VecDeque<Instant>,
}

/// What the stream-opening call found.
enum Opened {
    Stream(Box<(LeaseKeeper, LeaseKeepAliveStream)>),
    /// etcd does not know the lease (expired or revoked).
    LeaseGone,
}

pub(super) struct LeaseDriver {
    shared: Arc<Shared>,
    lease: Lease,
    /// The TTL etcd granted.
    ttl: Duration,
    keeper: Option<Keeper>,
    /// Opening a keep-alive stream (which also sends, and answers, one keep-alive).
    opening: Option<Pending<Opened>>,
    /// Keep-alives the machine asked for while the stream was being opened.
    queued: usize,
    grant: Option<Pending<LeaseGrantResponse>>,
    /// The last failure, for the message when no lease can be obtained.
    last_error: Option<String>,
    /// Whether etcd is failing us (a grant or keep-alive failed and none succeeded since):
    /// the first failure of an outage is a warning, the retries are not.
    degraded: bool,
    /// Tells `connect` the lease id, or why there is none.
    on_granted: Option<oneshot::Sender<Result<u64, StoreError>>>,
}

/// Bounds `future` by `timeout` on the runtime's clock, flattening both failures into a
/// message.
async fn bounded<T>(
    clock: Clock,
    timeout: Duration,
    future: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match clock.bridge_timeout(timeout, future).await {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(describe(&error)),
        None => Err(format!("no answer within {timeout:?}")),
    }
}

/// Polls an optional future; pending forever when there is none.
async fn maybe<T>(future: &mut Option<Pending<T>>) -> Result<T, String> {
    match future {
        Some(future) => future.await,
        None => pending().await,
    }
}

/// Sleeps until `deadline` by the runtime's clock; pending forever without one.
async fn sleep_until(clock: &Clock, deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => clock.bridge_sleep_until(deadline).await,
        None => pending().await,
    }
}

impl LeaseDriver {
    pub(super) fn new(
        shared: Arc<Shared>,
        lease: Lease,
        on_granted: oneshot::Sender<Result<u64, StoreError>>,
    ) -> Self {
        Self {
            ttl: lease.config().ttl,
            shared,
            lease,
            keeper: None,
            opening: None,
            queued: 0,
            grant: None,
            last_error: None,
            degraded: false,
            on_granted: Some(on_granted),
        }
    }

    /// How long a keep-alive may stay unanswered before the stream counts as broken.
    fn answer_timeout(&self) -> Duration {
        self.shared.request_timeout.min(self.ttl / 2)
    }

    pub(super) async fn run(mut self) {
        let mut stop = self.shared.stop.subscribe();
        let mut stopping = false;
        loop {
            self.run_commands().await;
            // Before the events: whoever learns of one sees the deadline that goes with it.
            *lock(&self.shared.lease_deadline) = self.lease.deadline();
            if self.hand_on_events() {
                return;
            }
            let timeout = self.lease.poll_timeout();
            let unanswered = self
                .keeper
                .as_ref()
                .and_then(|k| k.sent.front())
                .map(|sent| *sent + self.answer_timeout());
            let clock = self.shared.clock.clone();
            tokio::select! {
                biased;
                () = stopped(&mut stop), if !stopping => {
                    if self.shared.crashed.load(Ordering::SeqCst) {
                        return;
                    }
                    stopping = true;
                    self.lease.shutdown();
                }
                result = maybe(&mut self.grant) => {
                    self.grant = None;
                    self.granted(result);
                }
                result = maybe(&mut self.opening) => {
                    self.opening = None;
                    self.opened(result).await;
                }
                answer = next_answer(&mut self.keeper) => self.answered(answer),
                () = sleep_until(&clock, unanswered) => {
                    let why = format!("keep-alive unanswered for {:?}", self.answer_timeout());
                    self.channel_broke(why);
                }
                () = sleep_until(&clock, timeout) => self.lease.handle_timeout(clock.now()),
            }
        }
    }

    async fn run_commands(&mut self) {
        while let Some(command) = self.lease.poll_command() {
            match command {
                LeaseCommand::Grant { ttl } => {
                    let mut client = self.shared.client.lease_client();
                    let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
                    let clock = self.shared.clock.clone();
                    self.grant = Some(Box::pin(bounded(
                        clock,
                        self.shared.request_timeout,
                        async move { client.grant(secs, None).await },
                    )));
                }
                LeaseCommand::KeepAlive { id } => self.keep_alive(id).await,
                LeaseCommand::Revoke { id } => {
                    let mut client = self.shared.client.lease_client();
                    let raw = id.get() as i64;
                    let clock = self.shared.clock.clone();
                    let result = bounded(clock, self.shared.request_timeout, async move {
                        client.revoke(raw).await
                    })
                    .await;
                    let now = self.shared.clock.now();
                    let _ = match result {
                        Ok(_) => self.lease.handle_revoked(now),
                        Err(why) => {
                            self.last_error = Some(why);
                            self.lease.handle_revoke_failed(now)
                        }
                    };
                }
            }
        }
    }

    async fn keep_alive(&mut self, id: LeaseId) {
        if let Some(keeper) = &mut self.keeper {
            match keeper.keeper.keep_alive().await {
                Ok(()) => keeper.sent.push_back(self.shared.clock.now()),
                Err(error) => self.channel_broke(describe(&error)),
            }
        } else if self.opening.is_some() {
            self.queued += 1;
        } else {
            let mut client = self.shared.client.lease_client();
            let raw = id.get() as i64;
            let timeout = self.shared.request_timeout;
            let clock = self.shared.clock.clone();
            self.opening = Some(Box::pin(async move {
                match clock.bridge_timeout(timeout, client.keep_alive(raw)).await {
                    Some(Ok(pair)) => Ok(Opened::Stream(Box::new(pair))),
                    Some(Err(error)) if is_lease_not_found(&error) => Ok(Opened::LeaseGone),
                    Some(Err(error)) => Err(describe(&error)),
                    None => Err(format!("no answer within {timeout:?}")),
                }
            }));
        }
    }

    fn granted(&mut self, result: Result<LeaseGrantResponse, String>) {
        let now = self.shared.clock.now();
        let granted = result.and_then(|response| {
            let id = u64::try_from(response.id())
                .ok()
                .and_then(LeaseId::new)
                .ok_or_else(|| format!("etcd granted an invalid lease id {}", response.id()))?;
            let ttl = Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0));
            Ok((id, ttl))
        });
        match granted {
            Ok((id, ttl)) => {
                if let Err(error) = self.lease.handle_granted(id, ttl, now) {
                    self.last_error = Some(error.to_string());
                }
            }
            Err(why) => {
                self.failed("no lease granted yet", &why);
                self.last_error = Some(why);
                let _ = self.lease.handle_grant_failed(now);
            }
        }
    }

    async fn opened(&mut self, result: Result<Opened, String>) {
        let now = self.shared.clock.now();
        match result {
            Ok(Opened::Stream(pair)) => {
                let (keeper, stream) = *pair;
                // Opening sent one keep-alive and consumed its answer (TTL > 0, i.e. renewed
                // to the full TTL): it answers the oldest outstanding keep-alive.
                self.recovered();
                let _ = self.lease.handle_keepalive_ok(self.ttl, now);
                self.keeper = Some(Keeper {
                    keeper,
                    stream,
                    sent: VecDeque::new(),
                });
                let queued = std::mem::take(&mut self.queued);
                for _ in 0..queued {
                    let Some(id) = self.lease.id() else { break };
                    self.keep_alive(id).await;
                }
            }
            Ok(Opened::LeaseGone) => {
                self.queued = 0;
                let _ = self.lease.handle_keepalive_ok(Duration::ZERO, now);
            }
            Err(why) => self.channel_broke(why),
        }
    }

    fn answered(&mut self, answer: Result<Duration, String>) {
        match answer {
            Ok(ttl) => {
                if let Some(keeper) = &mut self.keeper {
                    keeper.sent.pop_front();
                }
                if !ttl.is_zero() {
                    self.recovered();
                }
                let _ = self.lease.handle_keepalive_ok(ttl, self.shared.clock.now());
            }
            Err(why) => self.channel_broke(why),
        }
    }

    /// The keep-alive channel is unusable: drop it and tell the machine (which voids every
    /// outstanding keep-alive; the next one opens a new stream).
    fn channel_broke(&mut self, why: String) {
        self.failed("lease keep-alive failed", &why);
        self.keeper = None;
        self.opening = None;
        self.queued = 0;
        self.last_error = Some(why);
        let _ = self.lease.handle_keepalive_failed(self.shared.clock.now());
    }

    /// Hands the machine's events on; `true` when the driver is done.
    fn hand_on_events(&mut self) -> bool {
        let mut done = false;
        while let Some(event) = self.lease.poll_event() {
            match event {
                LeaseEvent::Granted { id, ttl } => {
                    self.degraded = false;
                    tracing::info!(
                        lease = format_args!("{:x}", id.get()),
                        ?ttl,
                        endpoints = %self.shared.endpoints,
                        "etcd lease granted"
                    );
                    self.ttl = ttl;
                    if let Some(tx) = self.on_granted.take() {
                        let _ = tx.send(Ok(id.get()));
                    }
                }
                LeaseEvent::Lost { id, reason } => {
                    // Without an id, `connect` returns the error: no need to say it twice.
                    if let Some(id) = id {
                        tracing::warn!(
                            lease = format_args!("{:x}", id.get()),
                            ?reason,
                            endpoints = %self.shared.endpoints,
                            last_error = self.last_error.as_deref().unwrap_or("-"),
                            "etcd lease lost: this process's registrations are gone and its \
                             runtime shuts down"
                        );
                    }
                    self.shared.lost.set();
                    if let Some(tx) = self.on_granted.take() {
                        let _ = tx.send(Err(self.unreachable(reason)));
                    }
                    // Nothing to revoke: the driver's work is over.
                    if id.is_none() {
                        done = true;
                    }
                }
                LeaseEvent::Revoked { id, confirmed } => {
                    if let Some(id) = id {
                        tracing::info!(
                            lease = format_args!("{:x}", id.get()),
                            confirmed,
                            "etcd lease revoked"
                        );
                    }
                    done = true;
                }
            }
        }
        done
    }

    /// Logs the first failure of an outage as a warning (naming the endpoints), the others at
    /// debug level: a retry loop must not flood the log.
    fn failed(&mut self, what: &str, why: &str) {
        if std::mem::replace(&mut self.degraded, true) {
            tracing::debug!(endpoints = %self.shared.endpoints, error = why, "etcd: {what}");
        } else {
            tracing::warn!(
                endpoints = %self.shared.endpoints,
                error = why,
                "etcd unreachable ({what}); retrying"
            );
        }
    }

    /// A keep-alive succeeded: say so once after an outage.
    fn recovered(&mut self) {
        if std::mem::take(&mut self.degraded) {
            tracing::info!(endpoints = %self.shared.endpoints, "etcd reachable again; lease renewed");
        }
    }

    /// The one-line error `connect` returns when no lease could be obtained.
    fn unreachable(&self, reason: LostReason) -> StoreError {
        let timeout = self.lease.config().grant_timeout;
        let attempts = match reason {
            LostReason::GrantFailed { attempts } => format!("{attempts} attempts"),
            other => format!("{other:?}"),
        };
        let last = self
            .last_error
            .as_deref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default();
        StoreError::Unavailable(format!(
            "cannot get a lease from etcd at {} within {timeout:?} ({attempts}{last}); start \
             etcd there, point ETCD_ENDPOINTS at a running one, or run without etcd: \
             DYN_DISCOVERY_BACKEND=file (or mem)",
            self.shared.endpoints
        ))
    }
}

/// The next keep-alive answer on the open stream (its TTL), or why the stream broke; pending
/// forever without a stream.
async fn next_answer(keeper: &mut Option<Keeper>) -> Result<Duration, String> {
    let Some(keeper) = keeper else {
        return pending().await;
    };
    match keeper.stream.message().await {
        Ok(Some(response)) => Ok(Duration::from_secs(
            u64::try_from(response.ttl()).unwrap_or(0),
        )),
        Ok(None) => Err("keep-alive stream ended".into()),
        Err(error) => Err(describe(&error)),
    }
}
