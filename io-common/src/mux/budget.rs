//! The output budget shared by the connections of a process: the sum of what they hold to send
//! (each connection's `Conn::held_bytes`) stays under one limit, so many connections whose
//! peers stopped reading cannot add up to more than it. A handler whose connection would go
//! over it waits before handing its next item to the core (backpressure, not buffering).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use event_listener::{Event as Notify, EventListener};

/// The process-wide default: 256 MiB of output held across every connection.
pub const DEFAULT_PROCESS_OUTPUT_LIMIT: u64 = 256 * 1024 * 1024;

/// A shared limit on output held across connections. Cheap to clone (clones share it).
#[derive(Clone)]
pub struct OutputBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u64,
    used: AtomicU64,
    freed: Notify,
}

impl fmt::Debug for OutputBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

impl OutputBudget {
    /// A budget of `limit` bytes, shared by whoever holds a clone.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
                freed: Notify::new(),
            }),
        }
    }

    /// The budget every server of this process shares unless given another
    /// ([`DEFAULT_PROCESS_OUTPUT_LIMIT`]). Its limit is fixed: a `DistributedRuntime` configured
    /// with `DYN_TCP_MAX_PROCESS_OUTPUT_BYTES` gives its server a budget of its own instead
    /// (so two runtimes with different values do not race to set this one).
    pub fn process() -> Self {
        static PROCESS: OnceLock<OutputBudget> = OnceLock::new();
        PROCESS
            .get_or_init(|| Self::new(DEFAULT_PROCESS_OUTPUT_LIMIT))
            .clone()
    }

    /// Whether `other` is a clone of this budget (they count the same bytes).
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes held right now by the connections sharing it.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Whether a handler may hand the core more output.
    pub(crate) fn has_room(&self) -> bool {
        self.used() < self.inner.limit
    }

    /// A connection's holding went from `old` to `new` bytes.
    pub(crate) fn adjust(&self, old: u64, new: u64) {
        if new >= old {
            self.inner.used.fetch_add(new - old, Ordering::AcqRel);
            return;
        }
        let before = self.inner.used.fetch_sub(old - new, Ordering::AcqRel);
        if before - (old - new) < self.inner.limit {
            self.inner.freed.notify(usize::MAX);
        }
    }

    /// Ready once there is room; `waiting` keeps the registration between polls.
    pub(crate) fn poll_room(
        &self,
        cx: &mut Context<'_>,
        waiting: &mut Option<Pin<Box<EventListener>>>,
    ) -> Poll<()> {
        loop {
            if self.has_room() {
                *waiting = None;
                return Poll::Ready(());
            }
            match waiting {
                None => *waiting = Some(Box::pin(self.inner.freed.listen())),
                Some(listener) => {
                    if listener.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *waiting = None;
                }
            }
        }
    }
}
