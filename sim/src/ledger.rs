//! The ledger: what each side of every request did, and the invariants over it.
//!
//! Each request gets one record. The caller side writes its route, its connection and its end;
//! the worker side writes that it accepted the stream and how it ended it. The invariants are
//! checked as each fact is written (a second end is caught the moment it happens) and once more
//! when the run settles (every request has ended on both sides).

use std::fmt;
use std::time::Duration;

/// A property every run must keep. Each is named in the trace when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invariant {
    /// Every stream ends exactly once on each side, and the outcomes match: a caller's `Ok`
    /// means the worker finished the stream and every byte it sent arrived, in order.
    StreamEndsOnce,
    /// An accepted request is never lost silently: it completes, or its caller gets a typed
    /// error.
    NoSilentLoss,
    /// After a caller observed an instance's removal, it routes no new request to it (checked
    /// at every routing decision, retries included).
    NoRouteToRemoved,
    /// A worker whose drain the core's `Shutdown` reported clean delivered every stream it had
    /// accepted to the end, or its caller cancelled it.
    CleanDrainDelivers,
    /// The drain's report, taken when phase 3 begins, tells what really happened: its
    /// in-flight count is what the worker still had (streams running, answers not yet
    /// delivered), its lost count what it lost during the drain, its outcome and exit code
    /// follow from those (work running at the deadline: 3, a request lost: 6, the lease lost:
    /// 4, otherwise clean: 0); and every stream still running when phase 3 cuts its connection
    /// ends at its caller with a typed error.
    DrainReportTruthful,
    /// Checked after every step: phase 1 of a shutdown completes in the step that began it;
    /// phase 2 never outlasts its deadline, nor waits with nothing in flight.
    DrainBounded,
    /// A shutting-down worker refuses every new request (typed: `WorkerUnavailable`), and a
    /// caller offers a request an instance never took to another one while its retry budget
    /// and untried instances last.
    RefusalsRetried,
    /// A lost lease leads to deregistration within its TTL (plus the RPC timeout, for a
    /// keep-alive already on its way), whether the worker saw it lost or died holding it:
    /// checked after every step, and each time the store renews a lease under that promise. A
    /// worker never believes it holds a lease the store has already expired.
    LeaseDeregisters,
    /// The bytes held for one connection stay within the credit it granted (receiver: per
    /// connection and per stream) and the output limit (sender); checked at every change.
    MemoryWithinCredit,
    /// A worker's health tells the truth, checked after every step: never ready once its
    /// shutdown withdrew readiness; ready only while its last canary passed within the canary
    /// window (wait + request timeout) or real traffic succeeded within the traffic window (two
    /// waits + timeout: the runtime notes traffic lazily), so not ready within that bound once
    /// its handler stops answering; and ready once its handler has answered for a canary round
    /// without a shutdown.
    ReadinessTruthful,
    /// No node panics.
    NoPanic,
    /// A caller that has been told every change up to the store's current revision (its last
    /// event or list is at that revision and nothing more is on its way to it) knows exactly
    /// the instances the store holds: checked at every watch event and list it applies. A
    /// view rebuilt wrongly after a compaction (or a break) shows here.
    ViewMatchesStore,
}

impl Invariant {
    /// The name used in traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::StreamEndsOnce => "stream-ends-once",
            Self::NoSilentLoss => "no-silent-loss",
            Self::NoRouteToRemoved => "no-route-to-removed",
            Self::CleanDrainDelivers => "clean-drain-delivers",
            Self::DrainReportTruthful => "drain-report-truthful",
            Self::DrainBounded => "drain-bounded",
            Self::RefusalsRetried => "refusals-retried",
            Self::LeaseDeregisters => "lease-deregisters",
            Self::MemoryWithinCredit => "memory-within-credit",
            Self::ReadinessTruthful => "readiness-truthful",
            Self::NoPanic => "no-panic",
            Self::ViewMatchesStore => "view-matches-store",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// Virtual time of the failure.
    pub at: Duration,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} failed at {:?}: {}",
            self.invariant, self.at, self.detail
        )
    }
}

/// How the caller saw a request end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientEnd {
    Ok,
    /// The caller killed the stream itself (it no longer wanted the answer).
    Cancelled,
    /// A typed error: the mux error kind's Dynamo name, or the caller's own reason.
    Error(String),
}

/// How the worker ended a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerEnd {
    /// `finish` after every item.
    Finished,
    /// Cancelled (killed by the client or by the connection's end).
    Killed,
    /// The worker process died with the stream open.
    Died,
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) caller: usize,
    pub(crate) items: u32,
    pub(crate) item_size: u32,
    pub(crate) delay_us: u32,
    /// The worker slot it was sent to, once routed.
    pub(crate) worker: Option<(usize, u32)>,
    pub(crate) received: u64,
    /// The caller asked the worker to stop early: `Ok` may come before every item.
    pub(crate) stopped: bool,
    pub(crate) client_end: Option<ClientEnd>,
    pub(crate) server_accepted: bool,
    pub(crate) server_end: Option<ServerEnd>,
    pub(crate) server_sent: u64,
    /// Its items came as text over Dynamo's protocol: each byte is [`letter`] of the pattern.
    pub(crate) letters: bool,
}

impl Request {
    pub(crate) fn total_bytes(&self) -> u64 {
        u64::from(self.items) * u64::from(self.item_size)
    }
}

/// Every request of a run.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) requests: Vec<Request>,
}

impl Ledger {
    pub(crate) fn issue(
        &mut self,
        caller: usize,
        items: u32,
        item_size: u32,
        delay_us: u32,
    ) -> u64 {
        self.requests.push(Request {
            caller,
            items,
            item_size,
            delay_us,
            worker: None,
            received: 0,
            stopped: false,
            client_end: None,
            server_accepted: false,
            server_end: None,
            server_sent: 0,
            letters: false,
        });
        self.requests.len() as u64 - 1
    }

    /// The caller's end of a request; a second one is a violation.
    pub(crate) fn client_end(&mut self, req: u64, end: ClientEnd) -> Result<(), String> {
        let r = &mut self.requests[req as usize];
        if let Some(previous) = &r.client_end {
            return Err(format!(
                "request {req}: caller saw a second end {end:?} after {previous:?}"
            ));
        }
        if end == ClientEnd::Ok {
            if r.received != r.total_bytes() && !r.stopped {
                return Err(format!(
                    "request {req}: caller got Ok after {} of {} bytes",
                    r.received,
                    r.total_bytes()
                ));
            }
            if r.server_end != Some(ServerEnd::Finished) {
                return Err(format!(
                    "request {req}: caller got Ok but the worker's end is {:?}",
                    r.server_end
                ));
            }
        }
        r.client_end = Some(end);
        Ok(())
    }

    /// The worker's end of a stream; a second one is a violation.
    pub(crate) fn server_end(&mut self, req: u64, end: ServerEnd) -> Result<(), String> {
        let r = &mut self.requests[req as usize];
        if !r.server_accepted {
            return Err(format!(
                "request {req}: worker ended ({end:?}) a stream it never accepted"
            ));
        }
        if let Some(previous) = r.server_end {
            return Err(format!(
                "request {req}: worker ended the stream twice: {end:?} after {previous:?}"
            ));
        }
        r.server_end = Some(end);
        Ok(())
    }

    /// Data for a request arrived at the caller: checks order and content.
    pub(crate) fn received(&mut self, req: u64, payload: &[u8]) -> Result<(), String> {
        let r = &mut self.requests[req as usize];
        if r.client_end.is_some() {
            return Err(format!("request {req}: data after the caller saw its end"));
        }
        let size = u64::from(r.item_size.max(1));
        for (at, byte) in [
            (0, payload.first()),
            (payload.len().saturating_sub(1), payload.last()),
        ] {
            if let Some(&byte) = byte {
                let item = (r.received + at as u64) / size;
                let want = if r.letters {
                    letter(pattern(req, item))
                } else {
                    pattern(req, item)
                };
                if byte != want {
                    return Err(format!(
                        "request {req}: byte {} is {byte:#x}, not item {item}'s {want:#x}",
                        r.received + at as u64,
                    ));
                }
            }
        }
        r.received += payload.len() as u64;
        if r.received > r.total_bytes() {
            return Err(format!(
                "request {req}: {} bytes arrived of {} sent at most",
                r.received,
                r.total_bytes()
            ));
        }
        Ok(())
    }

    /// The final check, once the run has settled: every request ended on the caller's side,
    /// and every accepted stream on the worker's.
    pub(crate) fn settled(&self) -> Result<(), (Invariant, String)> {
        for (i, r) in self.requests.iter().enumerate() {
            if r.client_end.is_none() {
                return Err((
                    Invariant::NoSilentLoss,
                    format!(
                        "request {i} (caller {}, worker {:?}) never ended at the caller: accepted by the worker: {}, worker end {:?}, {} of {} bytes received",
                        r.caller,
                        r.worker,
                        r.server_accepted,
                        r.server_end,
                        r.received,
                        r.total_bytes()
                    ),
                ));
            }
            if r.server_accepted && r.server_end.is_none() {
                return Err((
                    Invariant::StreamEndsOnce,
                    format!("request {i}: the worker never ended the stream it accepted"),
                ));
            }
        }
        Ok(())
    }
}

/// The byte every position of item `item` of request `req` holds.
pub(crate) fn pattern(req: u64, item: u64) -> u8 {
    (req.wrapping_mul(31).wrapping_add(item)) as u8
}

/// The text byte standing for pattern byte `byte` in items sent as text (`a` to `z`).
pub(crate) fn letter(byte: u8) -> u8 {
    b'a' + byte % 26
}

/// Virtual nanoseconds as a `Duration`.
pub(crate) fn at(now: u64) -> Duration {
    Duration::from_nanos(now)
}
