//! [`BatchQueue`]: a bounded queue between a producer that hands over many items at once and
//! receivers that take them one by one or all at once.
//!
//! Why not async-channel: its `try_send` wakes a waiting receiver per item. A receiver that
//! keeps up with its producer is then parked and woken once per item — on tokio a run-queue
//! push and often a thread unpark each — which capped a SUB socket's 64-byte messages well
//! below what the connection delivers. Here a producer queues everything one read decoded
//! under one lock and wakes receivers once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

/// What [`BatchQueue::push_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Items queued.
    pub(crate) queued: usize,
    /// Items dropped because the queue held `capacity` items.
    pub(crate) dropped: usize,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded multi-producer, multi-receiver queue (see the module documentation). Closing it
/// ([`Self::close`]) refuses new items; receivers get what is queued, then `None`.
pub(crate) struct BatchQueue<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Receivers waiting for an item or the close.
    available: Event,
}

impl<T> BatchQueue<T> {
    /// A queue holding at most `capacity` (at least 1) items.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            available: Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding it would be a bug in this file; the queue stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `items` in order while there is room and drops the rest (counted in the
    /// result); wakes receivers once. A closed queue takes nothing (and counts no drop: nobody
    /// is left to miss the items).
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = T>) -> Pushed {
        let mut pushed = Pushed::default();
        {
            let mut state = self.lock();
            if state.closed {
                return pushed;
            }
            for item in items {
                if state.items.len() < self.capacity {
                    state.items.push_back(item);
                    pushed.queued += 1;
                } else {
                    pushed.dropped += 1;
                }
            }
        }
        if pushed.queued > 0 {
            self.available.notify(pushed.queued);
        }
        pushed
    }

    /// Refuses new items and wakes every receiver; what is queued can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.available.notify(usize::MAX);
    }

    /// Whether [`Self::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.lock().items.pop_front()
    }

    /// Moves every queued item to `out`; `None` once the queue is closed and empty.
    fn take_all(&self, out: &mut Vec<T>) -> Option<usize> {
        let mut state = self.lock();
        if state.items.is_empty() && state.closed {
            return None;
        }
        let n = state.items.len();
        out.extend(state.items.drain(..));
        Some(n)
    }

    /// The next item, waiting for one; `None` once the queue is closed and empty.
    pub(crate) async fn recv(&self) -> Option<T> {
        let mut listener = None;
        std::future::poll_fn(|cx| self.poll_recv(cx, &mut listener)).await
    }

    /// Every queued item (at least one) appended to `out`, waiting for one; `None` once the
    /// queue is closed and empty.
    pub(crate) async fn recv_all(&self, out: &mut Vec<T>) -> Option<usize> {
        let mut listener: Option<EventListener> = None;
        loop {
            match self.take_all(out) {
                None => return None,
                Some(0) => {}
                Some(n) => return Some(n),
            }
            match listener.take() {
                // Registered before the second look, so an item queued in between wakes it.
                None => listener = Some(self.available.listen()),
                Some(l) => l.await,
            }
        }
    }

    /// [`Self::recv`] as a poll, for a `Stream`: `listener` keeps the registration between
    /// polls.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        listener: &mut Option<EventListener>,
    ) -> Poll<Option<T>> {
        loop {
            {
                let mut state = self.lock();
                if let Some(item) = state.items.pop_front() {
                    *listener = None;
                    return Poll::Ready(Some(item));
                }
                if state.closed {
                    *listener = None;
                    return Poll::Ready(None);
                }
            }
            match listener {
                // Registered before the second look, so an item queued in between wakes it.
                None => *listener = Some(self.available.listen()),
                Some(l) => {
                    std::task::ready!(Pin::new(l).poll(cx));
                    *listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_drops_beyond_capacity_and_counts() {
        let q = BatchQueue::new(3);
        assert_eq!(
            q.push_all([1, 2]),
            Pushed {
                queued: 2,
                dropped: 0
            }
        );
        assert_eq!(
            q.push_all([3, 4, 5]),
            Pushed {
                queued: 1,
                dropped: 2
            }
        );
        assert_eq!(q.try_recv(), Some(1));
        assert_eq!(q.push_all([6]).queued, 1);
        let mut all = Vec::new();
        assert_eq!(
            futures_lite::future::block_on(q.recv_all(&mut all)),
            Some(3)
        );
        assert_eq!(all, vec![2, 3, 6]);
    }

    #[test]
    fn close_delivers_what_is_queued_then_ends() {
        let q = BatchQueue::new(4);
        q.push_all([1, 2]);
        q.close();
        assert!(q.is_closed());
        assert_eq!(
            q.push_all([3]),
            Pushed::default(),
            "a closed queue takes nothing"
        );
        assert_eq!(futures_lite::future::block_on(q.recv()), Some(1));
        assert_eq!(futures_lite::future::block_on(q.recv()), Some(2));
        assert_eq!(futures_lite::future::block_on(q.recv()), None);
        assert_eq!(
            futures_lite::future::block_on(q.recv_all(&mut Vec::new())),
            None
        );
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_push_from_another_thread() {
        let q = std::sync::Arc::new(BatchQueue::new(8));
        let producer = q.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            producer.push_all([7, 8]);
            producer.close();
        });
        let mut got = Vec::new();
        while let Some(item) = futures_lite::future::block_on(q.recv()) {
            got.push(item);
        }
        thread.join().expect("producer");
        assert_eq!(got, vec![7, 8]);
    }
}
