//! # dynrt-core
//!
//! The sans-IO heart of dynrt: every wire codec and every state machine of the runtime, with no
//! sockets, no clocks, no threads and no executor. Drivers (`dynrt-tokio`, `dynrt-smol`, the
//! fuzzers, the benches, the simulation) own all IO and feed this crate bytes and time.
//!
//! ## How a driver talks to a state machine
//!
//! Every machine in this crate has four kinds of method (the shape quinn-proto made familiar):
//!
//! - getters (`&self`) that never change anything;
//! - `handle_*` methods for input from the network or the clock; they take `now` as a parameter;
//! - mutators for commands from the application (open a stream, register, shut down);
//! - `poll_*` methods for output: `poll_transmit` (bytes for a socket, written into a buffer the
//!   driver owns), `poll_event` (what the application must learn), `poll_command` (work for an
//!   external system such as etcd), and `poll_timeout` (the next deadline, `None` if none).
//!
//! After any input the driver drains every `poll_*` until it returns nothing, then sleeps until
//! the deadline from `poll_timeout` or the next input, whichever comes first. A deadline at or
//! before `now` means "do not sleep": call `handle_timeout(now)` and drain again (a blocking
//! driver must not pass a zero read timeout to std, which refuses it).
//!
//! ## The driver loop
//!
//! Here is a whole driver for dynrt's mux connection ([`conn::Conn`]): one `turn` function,
//! used for both ends, with the two sockets replaced by byte buffers. A real driver does the
//! same with a socket read in step 1 and a socket write in step 3, and sleeps on the socket
//! until the returned deadline; `core/examples/blocking_client.rs` and `blocking_server.rs` do
//! it over `std::net` and interoperate with `dynrt serve` and `dynrt call`.
//!
//! ```
//! use std::time::Instant;
//! use bytes::{Bytes, BytesMut};
//! use dynrt_core::conn::{Conn, ConnConfig, Event};
//! use dynrt_core::names::{InstanceId, TcpRoute};
//! use dynrt_core::wire::OutBuf;
//! use dynrt_core::wire::mux::{RequestHeader, WireStr};
//!
//! /// One turn: input and time in through `handle_*`, everything out through `poll_*`.
//! /// Returns the application's events and when to wake up if no byte arrives before.
//! fn turn(conn: &mut Conn, socket_in: &mut BytesMut, socket_out: &mut BytesMut, now: Instant)
//!     -> (Vec<Event>, Option<Instant>)
//! {
//!     if !socket_in.is_empty() {
//!         conn.handle_input(socket_in, now); // 1. bytes (on EOF: handle_transport_closed)
//!     }
//!     if conn.poll_timeout().is_some_and(|deadline| deadline <= now) {
//!         conn.handle_timeout(now); // 2. deadlines that passed: keep-alive, timeouts
//!     }
//!     let mut out = OutBuf::new(); // 3. output, into a buffer the driver owns
//!     while conn.poll_transmit(&mut out) {}
//!     socket_out.extend_from_slice(&out.take_contiguous()); // (a socket: write_vectored)
//!     let events = std::iter::from_fn(|| conn.poll_event()).collect(); // 4. events
//!     (events, conn.poll_timeout()) // 5. sleep until input or this deadline
//! }
//!
//! let now = Instant::now(); // the driver's clock: the core never reads one
//! let mut client = Conn::client(ConnConfig::default(), now)?;
//! let mut server = Conn::server(ConnConfig::default(), now)?;
//! let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
//! // Requests name the instance that serves the endpoint: `{id:x}/ns/comp/ep`.
//! let route = TcpRoute::new(InstanceId(0x2a), "dyn://demo.backend.generate".parse()?);
//! let (mut answer, mut done) = (Vec::new(), false);
//! while !done {
//!     let (events, _wake_at) = turn(&mut client, &mut to_client, &mut to_server, now);
//!     for event in events {
//!         match event {
//!             Event::HandshakeDone(_) => {
//!                 let header = RequestHeader::new("req-1").to_msgpack()?;
//!                 let payload = Bytes::from_static(br#"{"prompt":"hi"}"#);
//!                 client.open(WireStr::from(route.to_string()), header, payload)?;
//!             }
//!             Event::Data { id, payload, .. } => {
//!                 answer.extend_from_slice(&payload);
//!                 client.release(id, payload.len() as u64)?; // credit back to the server
//!             }
//!             Event::End { result, .. } => { result?; done = true; }
//!             _ => {}
//!         }
//!     }
//!     let (events, _wake_at) = turn(&mut server, &mut to_server, &mut to_client, now);
//!     for event in events {
//!         if let Event::StreamOpened(request) = event {
//!             assert_eq!(request.route.as_str(), route.to_string());
//!             server.send_data(request.stream, &mut Bytes::from_static(b"hello"))?;
//!             server.finish(request.stream)?;
//!         }
//!     }
//! }
//! assert_eq!(answer, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the bytes mean and when to call what (the route, raw item bytes, `payload_codec`,
//! credit, resuming a send after `Writable`) is written down under "Contracts" in [`conn`].
//! The codecs in [`wire`] follow the same rule in miniature: decoders pull whole frames out of
//! a `BytesMut` the driver owns, encoders append to one.
//!
//! The machines: [`conn`] (dynrt's mux connection), [`callhome`] (Dynamo's request connection and
//! call-home response streams, both sides), [`lease`], [`health`], [`shutdown`], the discovery
//! instance sets in [`discovery`], the dial state of every peer address in [`peers`], and one
//! request's way to an instance in [`router`] ([`router::Router`] chooses,
//! [`router::Placement`] retries a refused request and says whom to report down).
//!
//! The design decisions behind all this are written down in [`manual`].
#![forbid(unsafe_code)]

pub mod callhome;
pub mod config;
pub mod conn;
pub mod discovery;
pub mod events;
pub mod health;
pub mod kv;
pub mod lease;
pub mod manual;
pub mod metrics;
pub mod names;
pub mod peers;
pub mod router;
pub mod shutdown;
pub mod status;
pub mod wire;
pub mod zmtp;
