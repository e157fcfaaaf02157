//! A blocking dynrt client over `std::net`, with `dynrt-core` only: no async runtime, no
//! threads. It finds an instance of an endpoint in a file-store discovery directory, calls it
//! over dynrt's mux protocol and prints each response item on its own line.
//!
//! ```text
//! DYN_DISCOVERY_BACKEND=file DYN_FILE_KV=/tmp/dynrt dynrt serve &
//! DYN_FILE_KV=/tmp/dynrt cargo run -p dynrt-core --example blocking_client -- \
//!     dyn://demo.backend.generate '{"prompt":"hello world","max_tokens":4}'
//! ```
//!
//! It is the reference for writing a driver of your own: discovery (`find_instance`), the
//! connection loop (`call`), and the two socket helpers at the end. The loop is the one in
//! `dynrt_core::conn`'s docs: write what `poll_transmit` produced, act on every `poll_event`,
//! then block on the socket until the `poll_timeout` deadline.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, Event};
use dynrt_core::discovery::Bucket;
use dynrt_core::discovery::listing::{endpoint_instances, file_store_dir, file_store_key};
use dynrt_core::names::EndpointId;
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{RequestHeader, WireStr};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long a connect or a blocked write may take before the call fails.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, request] = &args[..] else {
        eprintln!("usage: blocking_client dyn://namespace.component.endpoint '<JSON request>'");
        return ExitCode::from(2);
    };
    let Some(root) = std::env::var_os("DYN_FILE_KV") else {
        eprintln!("blocking_client: set DYN_FILE_KV to the directory the worker registers in");
        return ExitCode::from(2);
    };
    let stdout = io::stdout();
    let result = endpoint
        .parse::<EndpointId>()
        .map_err(Error::from)
        .and_then(|endpoint| {
            call(Path::new(&root), &endpoint, request.as_bytes(), |item| {
                let mut out = stdout.lock();
                writeln!(out, "{}", String::from_utf8_lossy(item))?;
                out.flush()
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blocking_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The address and route of an instance of `endpoint` that speaks the mux, from the file
/// store at `root` (the lowest instance id: a real client would spread its calls).
pub(crate) fn find_instance(
    root: &Path,
    endpoint: &EndpointId,
) -> Result<(SocketAddr, String), Error> {
    let dir = root.join(file_store_dir(Bucket::Instances));
    let mut entries = Vec::new();
    let files = match std::fs::read_dir(&dir) {
        Ok(files) => files.collect::<Result<Vec<_>, _>>()?,
        // Nobody registered yet: no instances.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    for file in files {
        let Some(key) = file_store_key(Bucket::Instances, &file.file_name().to_string_lossy())
        else {
            continue; // a write in progress
        };
        // A file can vanish between the listing and the read (its owner left): skip it.
        if let Ok(value) = std::fs::read(file.path()) {
            entries.push((key, value));
        }
    }
    let listing = endpoint_instances(endpoint, entries);
    for skipped in &listing.skipped {
        eprintln!("blocking_client: skipping {skipped}");
    }
    let (_, tcp) = listing.mux_instances().next().ok_or_else(|| {
        format!(
            "no instance of {endpoint} serves the mux in {}",
            dir.display()
        )
    })?;
    let route = tcp
        .route_str()
        .ok_or_else(|| format!("the record at {} names no route", tcp.addr))?;
    Ok((tcp.addr, route.to_owned()))
}

/// Calls `endpoint` with `request` (the payload's bytes: JSON text, unlabelled, as `dynrt
/// call` sends it) and hands each response item to `on_item`, in order.
pub(crate) fn call(
    root: &Path,
    endpoint: &EndpointId,
    request: &[u8],
    mut on_item: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), Error> {
    let (addr, route) = find_instance(root, endpoint)?;
    let mut socket = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)?;
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(SOCKET_TIMEOUT))?;

    let mut conn = Conn::client(ConnConfig::default(), Instant::now())?;
    let header =
        RequestHeader::new(format!("blocking-client-{}", std::process::id())).to_msgpack()?;
    let mut request = Some(Bytes::copy_from_slice(request));
    let mut item = Vec::new(); // the item being assembled from `Data` pieces
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut out = OutBuf::new();
    loop {
        // 1. Output: everything the connection queued, written whole (blocking).
        if conn.poll_transmit(&mut out) {
            write_out(&mut socket, &mut out)?;
        }
        // 2. Events, each acted on; commands may queue more output (the loop comes back).
        while let Some(event) = conn.poll_event() {
            match event {
                // Streams may open once the server's HELLO arrived.
                Event::HandshakeDone(_) => {
                    if let Some(payload) = request.take() {
                        conn.open(WireStr::from(route.clone()), header.clone(), payload)?;
                    }
                }
                Event::Data { id, payload, more } => {
                    item.extend_from_slice(&payload);
                    // The piece is out of the connection's hands: its credit goes back.
                    conn.release(id, payload.len() as u64)?;
                    if !more {
                        on_item(&item)?;
                        item.clear();
                    }
                }
                Event::End { result, .. } => {
                    // Say goodbye (GOAWAY) and leave; the server sees a clean close.
                    conn.close(WireStr::from_static("done"));
                    if conn.poll_transmit(&mut out) {
                        let _ = write_out(&mut socket, &mut out);
                    }
                    return result.map_err(|e| format!("{addr} {route}: {e}").into());
                }
                Event::Closed(reason) => {
                    return Err(format!("{addr}: connection closed: {reason}").into());
                }
                _ => {}
            }
        }
        if conn.wants_transmit() {
            continue;
        }
        // 3. Wait for input until the next deadline.
        read_until_deadline(&mut conn, &mut socket, &mut input)?;
    }
}

/// Writes all of `out` to the socket with vectored writes.
fn write_out(socket: &mut TcpStream, out: &mut OutBuf) -> io::Result<()> {
    while !out.is_empty() {
        let written = {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = out.io_slices(&mut slices);
            socket.write_vectored(&slices[..n])?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        out.advance(written);
    }
    Ok(())
}

/// Blocks until bytes arrive or the connection's next deadline passes, and tells the
/// connection which. A deadline that is already due is handled without touching the socket:
/// std refuses a zero read timeout.
fn read_until_deadline(
    conn: &mut Conn,
    socket: &mut TcpStream,
    input: &mut BytesMut,
) -> io::Result<()> {
    let now = Instant::now();
    let wait = match conn.poll_timeout() {
        Some(deadline) if deadline <= now => {
            conn.handle_timeout(now);
            return Ok(());
        }
        Some(deadline) => Some(deadline - now),
        None => None, // no timer: block until the socket says something
    };
    socket.set_read_timeout(wait)?;
    let mut chunk = [0u8; 64 * 1024];
    match socket.read(&mut chunk) {
        Ok(0) => conn.handle_transport_closed(Instant::now()),
        Ok(n) => {
            input.extend_from_slice(&chunk[..n]);
            conn.handle_input(input, Instant::now());
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            conn.handle_timeout(Instant::now());
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(_) => conn.handle_transport_closed(Instant::now()),
    }
    Ok(())
}
