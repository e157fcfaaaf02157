//! The state of one stream at one end (see the transition tables in the module docs).

/// One stream. Client streams are `Receiving`, `Killed` or `Ended`; server streams `Serving`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stream {
    /// Client: REQUEST sent, DATA arriving.
    Receiving {
        /// Bytes of DATA the server may still send on this stream.
        window: u64,
        /// Bytes released by the application and not yet granted back with CREDIT.
        grant: u64,
        /// Bytes delivered to the application and not yet released.
        unreleased: u64,
        /// The last DATA had MORE.
        item_open: bool,
        /// CANCEL stop was sent.
        stop_sent: bool,
    },
    /// Client: CANCEL kill sent and `End` already delivered; waiting for the server's END to
    /// free the slot. DATA arriving is dropped.
    Killed {
        /// Bytes delivered before the kill and not yet released.
        unreleased: u64,
    },
    /// Client: ended (open count already decremented); kept only while the application holds
    /// unreleased data of it.
    Ended {
        /// Bytes delivered and not yet released (> 0).
        unreleased: u64,
    },
    /// Server: REQUEST received; the application answers.
    Serving {
        /// Bytes of DATA this side may still send on the stream.
        credit: u64,
        /// The REQUEST's body length: connection credit returned when the stream ends.
        request_len: u64,
        /// The last DATA sent had MORE.
        item_open: bool,
        /// CANCEL stop received.
        stop_requested: bool,
        /// A send was refused or cut short: raise `Writable` when credit comes.
        wants_write: bool,
        /// Since when the application has been waiting for room to send (credit or the
        /// output limit) without any byte taken; the stall timeout counts from here.
        blocked_since: Option<std::time::Instant>,
    },
}

impl Stream {
    /// Whether the stream counts against the open-stream limit.
    pub(super) fn is_open(&self) -> bool {
        !matches!(self, Self::Ended { .. })
    }

    /// Bytes delivered to the application and not yet released (client streams).
    pub(super) fn unreleased(&self) -> u64 {
        match self {
            Self::Receiving { unreleased, .. }
            | Self::Killed { unreleased }
            | Self::Ended { unreleased } => *unreleased,
            Self::Serving { .. } => 0,
        }
    }
}
