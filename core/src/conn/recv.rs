//! What the connection does with each frame the peer sent.

use super::{CancelCause, Conn, Event, PeerSettings, ProtocolViolation, Role, State, Stream};
use crate::wire::mux::{
    Cancel, CancelMode, Credit, Data, End, ErrorKind, Frame, FrameType, GoAway, Hello,
    MIN_MAX_FRAME_SIZE, MuxDecoder, Request, StreamError, StreamId, VERSION, WireStr,
};

type Verdict = Result<(), ProtocolViolation>;

impl Conn {
    pub(super) fn on_frame(&mut self, frame: Frame) {
        let verdict = match self.state {
            State::Handshake { .. } => self.on_handshake_frame(frame),
            State::Open { .. } => self.on_open_frame(frame),
            State::Closed(_) => Ok(()),
        };
        if let Err(violation) = verdict {
            self.violation(violation);
        }
    }

    fn on_handshake_frame(&mut self, frame: Frame) -> Verdict {
        match frame {
            Frame::Hello(hello) => self.on_hello(&hello),
            Frame::GoAway(goaway) => {
                self.close_with(
                    super::CloseReason::PeerGoAway {
                        code: goaway.code,
                        reason: goaway.reason,
                    },
                    None,
                );
                Ok(())
            }
            other => Err(ProtocolViolation::ExpectedHello {
                got: other.frame_type(),
            }),
        }
    }

    fn on_hello(&mut self, hello: &Hello) -> Verdict {
        if hello.version == 0 {
            return Err(ProtocolViolation::UnsupportedVersion { version: 0 });
        }
        if hello.max_frame_size < MIN_MAX_FRAME_SIZE {
            return Err(ProtocolViolation::FrameSizeTooSmall {
                value: hello.max_frame_size,
                min: MIN_MAX_FRAME_SIZE,
            });
        }
        let peer = PeerSettings {
            version: hello.version.min(VERSION),
            max_frame_size: hello.max_frame_size,
            max_streams: hello.max_streams,
            stream_credit: hello.stream_credit,
            conn_credit: hello.conn_credit,
        };
        self.peer = Some(peer);
        // Handshake done: frames may now be as large as this side announced.
        self.decoder = MuxDecoder::new(self.config.max_frame_size);
        self.send_credit = u64::from(hello.conn_credit);
        self.state = State::Open {
            goaway_sent: None,
            goaway_received: false,
        };
        self.idle_since = Some(self.now);
        self.events.push_back(Event::HandshakeDone(peer));
        Ok(())
    }

    fn on_open_frame(&mut self, frame: Frame) -> Verdict {
        // Matched on the frame alone, the role in guards: a (frame, role) tuple was a copy of
        // the whole frame value for every frame received.
        let role = self.role;
        match frame {
            Frame::Data(data) if role == Role::Client => self.on_data(data),
            Frame::Hello(_) => Err(ProtocolViolation::UnexpectedHello),
            Frame::Ping(value) => {
                self.pong = Some(value);
                Ok(())
            }
            // Any input already counts as a sign of life; the value needs no check.
            Frame::Pong(_) => Ok(()),
            Frame::GoAway(goaway) => {
                self.on_goaway(goaway);
                Ok(())
            }
            Frame::Credit(credit) => self.on_credit(credit),
            Frame::Request(request) if role == Role::Server => self.on_request(request),
            Frame::Cancel(cancel) if role == Role::Server => self.on_cancel(cancel),
            Frame::End(end) if role == Role::Client => self.on_end(end),
            other => Err(ProtocolViolation::WrongDirection {
                frame: other.frame_type(),
                role,
            }),
        }
    }

    /// A frame for an id above every stream opened so far.
    fn check_known(&self, frame: FrameType, stream: StreamId) -> Verdict {
        if stream > self.highest {
            return Err(ProtocolViolation::UnknownStream {
                frame,
                stream,
                highest: self.highest,
            });
        }
        Ok(())
    }

    fn on_goaway(&mut self, goaway: GoAway) {
        if !goaway.code.is_graceful() {
            return self.close_with(
                super::CloseReason::PeerGoAway {
                    code: goaway.code,
                    reason: goaway.reason,
                },
                None,
            );
        }
        let State::Open {
            goaway_received, ..
        } = &mut self.state
        else {
            return;
        };
        if *goaway_received {
            return; // later graceful GOAWAYs are ignored
        }
        *goaway_received = true;
        self.events.push_back(Event::GoAway {
            code: goaway.code,
            reason: goaway.reason,
            last_stream: goaway.last_stream,
        });
        if self.role == Role::Client {
            // Streams above the server's last accepted id were never processed.
            let refused: Vec<(StreamId, bool)> = self
                .streams
                .range(StreamId(goaway.last_stream.0.saturating_add(1))..)
                .filter(|(_, s)| s.is_open())
                .map(|(id, s)| (*id, matches!(s, Stream::Killed { .. })))
                .collect();
            for (id, killed) in refused {
                if killed {
                    // The application already had its End.
                    self.end_client_stream(id, None);
                    continue;
                }
                let error = StreamError::new(
                    ErrorKind::WORKER_UNAVAILABLE,
                    format!(
                        "stream {id} was not processed: the server is going away (last accepted \
                         stream {})",
                        goaway.last_stream
                    ),
                );
                self.end_client_stream(id, Some(Err(error)));
            }
        }
        self.send_goaway(goaway.code, WireStr::from_static("answering GOAWAY"));
        self.maybe_drained();
    }

    fn on_credit(&mut self, credit: Credit) -> Verdict {
        let Credit { stream, increment } = credit;
        if increment == 0 {
            return Err(ProtocolViolation::ZeroCredit { stream });
        }
        let add = |current: u64| {
            let new = current + u64::from(increment);
            if new > u64::from(u32::MAX) {
                Err(ProtocolViolation::CreditOverflow {
                    stream,
                    credit: current,
                    increment,
                })
            } else {
                Ok(new)
            }
        };
        if stream.is_connection() {
            self.send_credit = add(self.send_credit)?;
            if self.open_blocked && !self.is_going_away() {
                self.open_blocked = false;
                self.events.push_back(Event::CanOpen);
            }
            for (id, s) in &mut self.streams {
                if let Stream::Serving {
                    credit,
                    wants_write,
                    ..
                } = s
                    && *wants_write
                    && *credit > 0
                {
                    *wants_write = false;
                    self.events.push_back(Event::Writable { id: *id });
                }
            }
            return Ok(());
        }
        if self.role == Role::Client {
            return Err(ProtocolViolation::WrongDirection {
                frame: FrameType::Credit,
                role: self.role,
            });
        }
        self.check_known(FrameType::Credit, stream)?;
        if let Some(Stream::Serving {
            credit,
            wants_write,
            ..
        }) = self.streams.get_mut(&stream)
        {
            *credit = add(*credit)?;
            if *wants_write && self.send_credit > 0 {
                *wants_write = false;
                self.events.push_back(Event::Writable { id: stream });
            }
        }
        Ok(())
    }

    fn on_request(&mut self, request: Request) -> Verdict {
        let id = request.stream;
        let len = 6
            + request.route.len() as u64
            + request.header.len() as u64
            + request.payload.len() as u64;
        if id <= self.highest {
            return Err(ProtocolViolation::StreamIdNotIncreasing {
                stream: id,
                last: self.highest,
            });
        }
        self.highest = id;
        if len > self.recv_window {
            return Err(ProtocolViolation::FlowControl {
                frame: FrameType::Request,
                stream: StreamId::CONNECTION,
                len,
                credit: self.recv_window,
            });
        }
        self.recv_window -= len;
        self.maybe_grant_conn();
        if let State::Open {
            goaway_sent: Some(last),
            ..
        } = self.state
            && id > last
        {
            // Sent before the client saw our GOAWAY: not processed; the client ends it.
            self.grant_conn(len);
            return Ok(());
        }
        if self.open >= self.config.max_streams {
            return Err(ProtocolViolation::TooManyStreams {
                stream: id,
                limit: self.config.max_streams,
            });
        }
        let peer = self.peer.expect("Open implies the peer's HELLO arrived");
        self.streams.insert(
            id,
            Stream::Serving {
                credit: u64::from(peer.stream_credit),
                request_len: len,
                blocked_since: None,
                item_open: false,
                stop_requested: false,
                wants_write: false,
            },
        );
        self.open += 1;
        self.idle_since = None;
        self.events.push_back(Event::StreamOpened(request));
        Ok(())
    }

    fn on_cancel(&mut self, cancel: Cancel) -> Verdict {
        let id = cancel.stream;
        self.check_known(FrameType::Cancel, id)?;
        let Some(Stream::Serving { stop_requested, .. }) = self.streams.get_mut(&id) else {
            return Ok(()); // it crossed our END
        };
        match cancel.mode {
            CancelMode::Stop => {
                if !*stop_requested {
                    *stop_requested = true;
                    self.events.push_back(Event::Cancelled {
                        id,
                        mode: CancelMode::Stop,
                        cause: CancelCause::Client,
                    });
                }
            }
            CancelMode::Kill => {
                self.events.push_back(Event::Cancelled {
                    id,
                    mode: CancelMode::Kill,
                    cause: CancelCause::Client,
                });
                self.end_server_stream(
                    id,
                    Err(StreamError::new(
                        ErrorKind::CANCELLED,
                        WireStr::from_static("killed by the client"),
                    )),
                );
            }
        }
        Ok(())
    }

    pub(super) fn on_data(&mut self, data: Data) -> Verdict {
        let id = data.stream;
        let len = data.payload.len() as u64;
        self.check_known(FrameType::Data, id)?;
        // Built only on the error path: a `ProtocolViolation` made (and cloned) for every DATA
        // frame cost a tenth of its handling here.
        let not_open = || ProtocolViolation::StreamNotOpen {
            frame: FrameType::Data,
            stream: id,
        };
        let stream = self.streams.get_mut(&id).ok_or_else(not_open)?;
        if len > self.recv_window {
            return Err(ProtocolViolation::FlowControl {
                frame: FrameType::Data,
                stream: StreamId::CONNECTION,
                len,
                credit: self.recv_window,
            });
        }
        match stream {
            Stream::Receiving {
                window,
                unreleased,
                item_open,
                ..
            } => {
                if len > *window {
                    return Err(ProtocolViolation::FlowControl {
                        frame: FrameType::Data,
                        stream: id,
                        len,
                        credit: *window,
                    });
                }
                *window -= len;
                *unreleased += len;
                *item_open = data.more;
                self.recv_window -= len;
                self.maybe_grant_conn();
                self.events.push_back(Event::Data {
                    id,
                    payload: data.payload,
                    more: data.more,
                });
            }
            Stream::Killed { .. } => {
                self.recv_window -= len;
                self.grant_conn(len);
            }
            Stream::Ended { .. } | Stream::Serving { .. } => return Err(not_open()),
        }
        Ok(())
    }

    fn on_end(&mut self, end: End) -> Verdict {
        let id = end.stream;
        self.check_known(FrameType::End, id)?;
        match self.streams.get(&id) {
            Some(Stream::Receiving { item_open, .. }) => {
                if *item_open && end.result.is_ok() {
                    return Err(ProtocolViolation::IncompleteItem { stream: id });
                }
                self.end_client_stream(id, Some(end.result));
            }
            Some(Stream::Killed { .. }) => self.end_client_stream(id, None),
            _ => {
                return Err(ProtocolViolation::StreamNotOpen {
                    frame: FrameType::End,
                    stream: id,
                });
            }
        }
        Ok(())
    }

    /// Client: stream `id` (open) ends; `result` is raised as `End` unless the application
    /// already had its `End` (a kill).
    pub(super) fn end_client_stream(
        &mut self,
        id: StreamId,
        result: Option<Result<(), StreamError>>,
    ) {
        let unreleased = self.streams.get(&id).map_or(0, Stream::unreleased);
        if unreleased > 0 {
            self.streams.insert(id, Stream::Ended { unreleased });
        } else {
            self.streams.remove(&id);
        }
        if let Some(result) = result {
            self.events.push_back(Event::End { id, result });
        }
        self.stream_closed();
    }
}
