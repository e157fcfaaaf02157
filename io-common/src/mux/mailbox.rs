//! What response streams ask of the connection — credit to give back, a cancel, a reader that
//! went away — posted to a queue the driver applies once per turn, instead of each of them
//! taking the connection's lock.
//!
//! On a multi-threaded executor the callers and the connection's driver run on different
//! threads: a caller that locks the connection while the driver works on it (its whole turn:
//! input, output, events) sleeps on the mutex and wakes the driver's thread when it lets go.
//! Posting here holds a small lock for a push. The driver is woken only when a post needs it
//! soon: a cancel or a dropped reader (the server must hear of it), or credit piling up past
//! [`Mailbox::new`]'s `release_batch`. Smaller releases wait for the driver's next turn (the
//! next frame read or call opened), or for the next call, which applies the queue under the
//! lock it takes anyway.
//!
//! Why holding small releases back cannot stall the connection: what waits here is less than
//! `release_batch`, at most a quarter of the smaller of the stream and connection credit, and
//! the core holds back a grant of at most half of either; so the server always keeps some
//! credit, sends, and the driver's turn that reads it applies the queue.
//!
//! Bounded: a release carries at least one byte of an item handed out by the driver and not
//! yet given back (all of which the connection credit bounds), and a stream posts at most one
//! cancel of each mode and one drop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use dynrt_core::wire::mux::{CancelMode, StreamId};

/// One request of a response stream to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// The reader took items of these many bytes: their credit goes back.
    Release(StreamId, u64),
    Cancel(StreamId, CancelMode),
    /// The reader is gone: give back `unread` bytes and, unless the stream ended, kill it.
    Dropped {
        id: StreamId,
        unread: u64,
        kill: bool,
    },
}

pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
    /// Set while commands wait: the driver looks at this before taking the lock.
    posted: AtomicBool,
    /// Released bytes that wake the driver once this many wait.
    release_batch: u64,
}

#[derive(Default)]
struct Inner {
    commands: Vec<Command>,
    /// Bytes of the releases waiting.
    releasing: u64,
    driver: Option<Waker>,
    /// The driver stopped: posts are dropped (nothing is left to release or cancel).
    closed: bool,
}

impl Mailbox {
    /// A mailbox that wakes the driver for releases once `release_batch` bytes wait (0: at
    /// every release).
    pub(crate) fn new(release_batch: u64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            posted: AtomicBool::new(false),
            release_batch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `command` for the driver, waking it if the command cannot wait.
    pub(crate) fn post(&self, command: Command) {
        let wake = {
            let mut inner = self.lock();
            if inner.closed {
                return;
            }
            let urgent = match command {
                Command::Release(_, len) => {
                    inner.releasing += len;
                    inner.releasing >= self.release_batch
                }
                Command::Dropped { unread, kill, .. } => {
                    inner.releasing += unread;
                    kill || inner.releasing >= self.release_batch
                }
                Command::Cancel(..) => true,
            };
            inner.commands.push(command);
            self.posted.store(true, Ordering::Release);
            if urgent {
                // Counted as handed over: later posts wake again only past a new batch.
                inner.releasing = 0;
                inner.driver.clone()
            } else {
                None
            }
        };
        if let Some(waker) = wake {
            waker.wake();
        }
    }

    /// Remembers the driver's waker (the driver, when its own changed).
    pub(crate) fn set_driver(&self, waker: &Waker) {
        self.lock().driver = Some(waker.clone());
    }

    /// Moves the waiting commands into `into` (empty; its capacity is reused). Cheap when none
    /// wait.
    pub(crate) fn take(&self, into: &mut Vec<Command>) {
        if !self.posted.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        std::mem::swap(&mut inner.commands, into);
        inner.releasing = 0;
        self.posted.store(false, Ordering::Release);
    }

    /// The driver stopped: drops what waits and every later post, and the driver's waker.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.commands = Vec::new();
        inner.releasing = 0;
        inner.driver = None;
        self.posted.store(false, Ordering::Release);
    }
}

/// The release batch for a connection with these credits: a quarter of the smaller (see the
/// module's note on why that cannot stall it).
pub(crate) fn release_batch(stream_credit: u32, conn_credit: u32) -> u64 {
    u64::from(stream_credit.min(conn_credit)) / 4
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn driver(mailbox: &Mailbox) -> Arc<Count> {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        mailbox.set_driver(&Waker::from(count.clone()));
        count
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn small_releases_wait_for_the_driver_and_a_batch_wakes_it() {
        let mailbox = Mailbox::new(100);
        let count = driver(&mailbox);
        mailbox.post(Command::Release(StreamId(1), 60));
        assert_eq!(woken(&count), 0, "60 of 100 bytes: no wake");
        mailbox.post(Command::Release(StreamId(3), 40));
        assert_eq!(woken(&count), 1, "100 bytes wait: the driver is woken");
        mailbox.post(Command::Release(StreamId(5), 99));
        assert_eq!(woken(&count), 1, "a new batch starts after a wake");
        let mut taken = Vec::new();
        mailbox.take(&mut taken);
        assert_eq!(
            taken,
            [
                Command::Release(StreamId(1), 60),
                Command::Release(StreamId(3), 40),
                Command::Release(StreamId(5), 99),
            ]
        );
        taken.clear();
        mailbox.take(&mut taken);
        assert!(taken.is_empty(), "taken once");
    }

    #[test]
    fn cancels_and_kills_wake_the_driver_at_once() {
        let mailbox = Mailbox::new(u64::MAX);
        let count = driver(&mailbox);
        mailbox.post(Command::Cancel(StreamId(1), CancelMode::Stop));
        assert_eq!(woken(&count), 1);
        mailbox.post(Command::Dropped {
            id: StreamId(3),
            unread: 5,
            kill: false,
        });
        assert_eq!(
            woken(&count),
            1,
            "an ended stream's drop only gives back credit"
        );
        mailbox.post(Command::Dropped {
            id: StreamId(5),
            unread: 0,
            kill: true,
        });
        assert_eq!(woken(&count), 2);
    }

    #[test]
    fn a_closed_mailbox_keeps_nothing() {
        let mailbox = Mailbox::new(0);
        let count = driver(&mailbox);
        mailbox.post(Command::Release(StreamId(1), 1));
        mailbox.close();
        mailbox.post(Command::Release(StreamId(1), 1));
        let mut taken = Vec::new();
        mailbox.take(&mut taken);
        assert!(taken.is_empty());
        assert_eq!(woken(&count), 1, "only the post before the close woke it");
    }

    #[test]
    fn the_batch_is_a_quarter_of_the_smaller_credit() {
        assert_eq!(release_batch(1024 * 1024, 64 * 1024 * 1024), 256 * 1024);
        assert_eq!(release_batch(64, 16), 4);
        assert_eq!(
            release_batch(3, 1024),
            0,
            "tiny credits: every release wakes"
        );
    }
}
