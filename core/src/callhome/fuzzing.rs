//! Fuzz support, not a stable API: [`callhome_ops`] drives every call-home machine with an
//! operation sequence decoded from fuzzer bytes and checks the invariants after each step:
//! no panic, a terminal event at most once, nothing written by a worker after a stop or kill,
//! and every deadline later than the time that was handled (the busy-loop guard).

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{
    CallHomeConfig, CallerEvent, CallerStream, Cancel, RequestReceiver, RequestSender, WorkerEvent,
    WorkerStream,
};
use crate::wire::OutBuf;
use crate::wire::dynamo::{AckFrame, PayloadCodec, RequestFrame, ResponseStreamPrologue};

/// Runs the operations encoded in `data` against a caller stream, a worker stream, and both
/// ends of a request connection, all at virtual time starting at `start`.
pub fn callhome_ops(data: &[u8], start: Instant) {
    let config = CallHomeConfig {
        max_message_size: 64 * 1024,
        ..CallHomeConfig::default()
    };
    let mut now = start;
    let mut caller = CallerStream::new(config.clone(), now);
    let codec = if data.first().is_some_and(|b| b & 1 == 1) {
        PayloadCodec::Msgpack
    } else {
        PayloadCodec::Json
    };
    let mut worker = WorkerStream::new("s", codec, config.clone());
    let mut sender = RequestSender::new(config.clone());
    let mut receiver = RequestReceiver::new(config.max_message_size);
    let mut out = OutBuf::new();
    let (mut caller_terminal, mut worker_terminal) = (0, 0);
    let mut worker_cancelled = false;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        match op % 16 {
            0 => caller.handle_input(&mut BytesMut::from(chunk), now),
            1 => {
                let _ = caller.accept(codec, now);
            }
            2 => {
                let _ = caller.reject();
            }
            3 => {
                let _ = caller.cancel(if len % 2 == 0 {
                    Cancel::Stop
                } else {
                    Cancel::Kill
                });
            }
            4 if len % 2 == 0 => caller.handle_eof(now),
            4 => caller.handle_reset(now),
            5 => worker.handle_input(&mut BytesMut::from(chunk), now),
            6 => {
                let prologue = if len % 2 == 0 {
                    ResponseStreamPrologue::ok()
                } else {
                    ResponseStreamPrologue::error("no")
                };
                let _ = worker.send_prologue(&prologue);
            }
            7 => {
                let _ = worker.send_item_json(chunk);
            }
            8 => {
                let _ = worker.finish();
            }
            9 => worker.handle_eof(now),
            10 => worker.handle_write_failed("fuzz"),
            11 => {
                let _ = sender.send(
                    RequestFrame::with_raw_headers("p", b"{}", chunk.to_vec().into())
                        .expect("small frame"),
                    now,
                );
                sender.handle_input(&mut BytesMut::from(chunk), now);
            }
            12 => {
                receiver.handle_input(&mut BytesMut::from(chunk), now);
                while let Some(event) = receiver.poll_event() {
                    if let super::RequestEvent::Request { seq, .. } = event {
                        let _ = receiver.ack(seq, AckFrame::accepted());
                    }
                }
            }
            13 => {
                now += Duration::from_millis(u64::from(op) * 1_000 * len as u64);
                caller.handle_timeout(now);
                worker.handle_timeout(now);
                sender.handle_timeout(now);
                for t in [
                    caller.poll_timeout(),
                    worker.poll_timeout(),
                    sender.poll_timeout(),
                ]
                .into_iter()
                .flatten()
                {
                    assert!(t > now, "a deadline at or before the time just handled");
                }
            }
            _ => {
                sender.handle_eof(now);
                receiver.handle_eof(now);
            }
        }
        let _ = caller.poll_transmit(&mut out);
        let wrote = worker.poll_transmit(&mut out, now);
        assert!(
            !(wrote && worker_cancelled),
            "the worker wrote after a stop or kill"
        );
        let _ = sender.poll_transmit(&mut out);
        let _ = receiver.poll_transmit(&mut out);
        out.take_contiguous();
        while let Some(event) = caller.poll_event() {
            if matches!(
                event,
                CallerEvent::Finished { .. } | CallerEvent::Failed(_) | CallerEvent::Refused { .. }
            ) {
                caller_terminal += 1;
            }
        }
        while let Some(event) = worker.poll_event() {
            worker_cancelled |= matches!(event, WorkerEvent::Cancelled(_));
            worker_terminal += 1;
        }
        while sender.poll_event().is_some() {}
        assert!(caller_terminal <= 1, "the caller ended twice");
        assert!(worker_terminal <= 1, "the worker ended twice");
    }
}
