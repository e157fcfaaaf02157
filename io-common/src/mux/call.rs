//! One call's inbox, shared by the connection's driver (which fills it) and the call's
//! response stream (which empties it), behind a lock of its own.
//!
//! The response stream never takes the connection's lock to read: it takes every item that
//! arrived, and the end, under this small lock, which the driver holds only to push an item.
//! On a multi-threaded executor the reader and the driver run on different threads; the
//! connection's lock is held for the driver's whole turn, this one for a push.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use dynrt_core::wire::mux::StreamError;

use super::pieces::Pieces;
use super::state::Items;

/// The inbox of one call.
#[derive(Default)]
pub(crate) struct CallCell {
    inbox: Mutex<Inbox>,
}

#[derive(Default)]
pub(crate) struct Inbox {
    /// Items with the number of their bytes still to release to the core once taken.
    pub(crate) items: Items,
    pub(crate) end: Option<Result<(), StreamError>>,
    /// The connection closed without ending the stream (cannot normally happen: closing ends
    /// every stream first), so the reader is not left waiting.
    pub(crate) closed: bool,
    /// The reader waiting for the next item or the end.
    pub(crate) waker: Option<Waker>,
    /// The reader is gone: the driver releases what still arrives instead of keeping it.
    pub(crate) dropped: bool,
}

impl CallCell {
    /// A call just opened, its reader's waker registered.
    pub(crate) fn waiting(waker: Waker) -> Arc<Self> {
        Arc::new(Self {
            inbox: Mutex::new(Inbox {
                waker: Some(waker),
                ..Inbox::default()
            }),
        })
    }

    /// Locks the inbox. A panic while it was held (a bug) does not poison it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The driver's record of a call in flight.
pub(crate) struct CallEntry {
    pub(crate) cell: Arc<CallCell>,
    /// Pieces of an item that continues (`more`), already released to the core.
    pub(crate) partial: Option<Pieces>,
}

impl CallEntry {
    pub(crate) fn new(cell: Arc<CallCell>) -> Self {
        Self {
            cell,
            partial: None,
        }
    }
}
