//! A blocking dynrt worker over `std::net`, with `dynrt-core` only: one thread per
//! connection, no async runtime. It registers an endpoint in a file-store discovery directory
//! and answers `dynrt call` (or `blocking_client`) over dynrt's mux protocol with the demo
//! generator's answer: `{"prompt":"hi there","max_tokens":3}` streams `hi`, `there`, `hi`.
//!
//! ```text
//! DYN_FILE_KV=/tmp/dynrt cargo run -p dynrt-core --example blocking_server -- dyn://demo.blocking.generate
//! DYN_DISCOVERY_BACKEND=file DYN_FILE_KV=/tmp/dynrt dynrt call dyn://demo.blocking.generate \
//!     '{"prompt":"hi there","max_tokens":3}'
//! ```
//!
//! With `--connections N` it serves N connections, then leaves discovery and exits; without,
//! it serves until killed (its record then expires within the store's TTL, 10 s).
//!
//! The reference for a server driver: registration (`Registration`), the accept loop
//! (`serve`), and the connection loop (`serve_connection`), where answers larger than the
//! client's credit wait in a `SendQueue` and resume on `Event::Writable`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, Event, Flushed, QueueFull, SendQueue};
use dynrt_core::discovery::listing::file_store_dir;
use dynrt_core::discovery::{
    Bucket, DiscoveryRecord, DynrtCapabilities, EndpointRecord, MUX_PROTOCOL_VERSION, Transport,
};
use dynrt_core::kv::file::{DEFAULT_TTL, TEMP_FILE_PREFIX, file_name, keep_alive_interval};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{CancelMode, ErrorKind, Request, StreamError, StreamId};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long a blocked write may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of answer one stream keeps queued while the client has no credit for them.
const QUEUE_LIMIT: usize = 256 * 1024;
/// The generator's limit, as `dynrt serve`'s.
const MAX_TOKENS: u64 = 100_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (endpoint, connections) = match &args[..] {
        [endpoint] => (endpoint, None),
        [endpoint, flag, n] if flag == "--connections" => match n.parse::<usize>() {
            Ok(n) => (endpoint, Some(n)),
            Err(e) => {
                eprintln!("blocking_server: --connections '{n}': {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "usage: blocking_server dyn://namespace.component.endpoint [--connections N]"
            );
            return ExitCode::from(2);
        }
    };
    let Some(root) = std::env::var_os("DYN_FILE_KV") else {
        eprintln!("blocking_server: set DYN_FILE_KV to the discovery directory");
        return ExitCode::from(2);
    };
    let result = endpoint
        .parse::<EndpointId>()
        .map_err(Error::from)
        .and_then(|endpoint| {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            serve(listener, Path::new(&root), endpoint, connections, |line| {
                println!("{line}");
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blocking_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Registers `endpoint` in the file store at `root`, serves connections from `listener` (at
/// most `connections` of them, if given), then leaves discovery. `say` gets the startup lines.
pub(crate) fn serve(
    listener: TcpListener,
    root: &Path,
    endpoint: EndpointId,
    connections: Option<usize>,
    mut say: impl FnMut(String),
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    let instance = new_instance_id();
    let route = TcpRoute::new(instance, endpoint.clone());
    let registration = Registration::create(root, &endpoint, instance, addr, &route)?;
    say(format!(
        "serving {endpoint} as instance {instance} at {addr}/{route}"
    ));

    let route = Arc::new(route.to_string());
    let mut workers = Vec::new();
    for socket in listener.incoming().take(connections.unwrap_or(usize::MAX)) {
        let socket = socket?;
        let route = route.clone();
        workers.push(std::thread::spawn(move || {
            if let Err(e) = serve_connection(socket, &route) {
                eprintln!("blocking_server: connection: {e}");
            }
        }));
    }
    for worker in workers {
        let _ = worker.join();
    }
    registration.remove()
}

/// An id unlikely to collide with another process's (a real worker takes its lease id).
fn new_instance_id() -> InstanceId {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(std::process::id()) << 32 | u64::from(nanos)) & 0x7fff_ffff_ffff_ffff;
    InstanceId(mixed.max(1))
}

/// This process's record in the file store, kept alive by a thread that touches it.
struct Registration {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    keeper: std::thread::JoinHandle<()>,
}

impl Registration {
    fn create(
        root: &Path,
        endpoint: &EndpointId,
        instance: InstanceId,
        addr: SocketAddr,
        route: &TcpRoute,
    ) -> Result<Self, Error> {
        let mut record = EndpointRecord::new(
            endpoint,
            instance,
            Transport::Tcp(format!("{addr}/{route}")),
        );
        // Without this a dynrt caller would speak Dynamo's protocol to us.
        record.dynrt = Some(DynrtCapabilities::with_mux(MUX_PROTOCOL_VERSION));
        let record = DiscoveryRecord::from(record);
        let dir = root.join(file_store_dir(Bucket::Instances));
        std::fs::create_dir_all(&dir)?;
        let key = record.key();
        let relative = key
            .strip_prefix(Bucket::Instances.prefix())
            .expect("an endpoint record's key is in the instances bucket");
        let path = dir.join(file_name(relative));
        // Written aside, then renamed: a reader never sees half a record.
        let temp = dir.join(format!("{TEMP_FILE_PREFIX}{instance}"));
        std::fs::write(&temp, record.to_json())?;
        std::fs::rename(&temp, &path)?;

        // Peers delete files not touched within the TTL.
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = {
            let (stop, path) = (stop.clone(), path.clone());
            std::thread::spawn(move || {
                let every = keep_alive_interval(DEFAULT_TTL);
                let tick = Duration::from_millis(100);
                let mut next = Instant::now() + every;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    if Instant::now() >= next {
                        next += every;
                        let touched = File::options()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_modified(SystemTime::now()));
                        if let Err(e) = touched {
                            eprintln!("blocking_server: keeping {} alive: {e}", path.display());
                        }
                    }
                }
            })
        };
        Ok(Self { path, stop, keeper })
    }

    fn remove(self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.keeper.join();
        std::fs::remove_file(&self.path)?;
        Ok(())
    }
}

/// One stream's answer: what waits for credit, and the items not yet produced.
struct Answer {
    queue: SendQueue,
    tokens: VecDeque<Bytes>,
}

impl Answer {
    /// Moves produced items into the queue while it takes them, then sends what it can.
    /// Stops when the connection has no room (`Writable` resumes it) or the answer is sent:
    /// an emptied queue raises no `Writable`, so it is refilled here at once.
    fn pump(&mut self, conn: &mut Conn) -> Result<Flushed, Error> {
        loop {
            while let Some(token) = self.tokens.pop_front() {
                if let Err(QueueFull { item, .. }) = self.queue.push(token) {
                    self.tokens.push_front(item);
                    break;
                }
            }
            if self.tokens.is_empty() {
                self.queue.finish_when_sent();
            }
            match self.queue.flush(conn)? {
                Flushed::Empty => continue,
                waiting_or_finished => return Ok(waiting_or_finished),
            }
        }
    }
}

/// Serves one connection until it closes.
pub(crate) fn serve_connection(mut socket: TcpStream, route: &str) -> Result<(), Error> {
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut conn = Conn::server(ConnConfig::default(), Instant::now())?;
    let mut answers: HashMap<StreamId, Answer> = HashMap::new();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut out = OutBuf::new();
    loop {
        // 1. Output.
        if conn.poll_transmit(&mut out) {
            write_out(&mut socket, &mut out)?;
        }
        // 2. Events.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::StreamOpened(request) => {
                    let id = request.stream;
                    match answer(&request, route) {
                        Ok(tokens) => {
                            let mut answer = Answer {
                                queue: SendQueue::new(id, QUEUE_LIMIT),
                                tokens: tokens.into(),
                            };
                            if answer.pump(&mut conn)? != Flushed::Finished {
                                answers.insert(id, answer);
                            }
                        }
                        Err(error) => conn.send_error(id, error)?,
                    }
                }
                // Room again: send what waited, produce more.
                Event::Writable { id } => {
                    if let Some(answer) = answers.get_mut(&id)
                        && answer.pump(&mut conn)? == Flushed::Finished
                    {
                        answers.remove(&id);
                    }
                }
                // Stop: end after what is queued. Kill: the stream is gone.
                Event::Cancelled { id, mode, .. } => {
                    if let Some(answer) = answers.get_mut(&id) {
                        answer.tokens.clear();
                        if mode == CancelMode::Kill || answer.pump(&mut conn)? == Flushed::Finished
                        {
                            answers.remove(&id);
                        }
                    }
                }
                Event::Closed(_) => {
                    // Flush the final GOAWAY if the peer still reads; then the socket closes.
                    if !conn.is_flush_abandoned() && conn.poll_transmit(&mut out) {
                        let _ = write_out(&mut socket, &mut out);
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if conn.wants_transmit() {
            continue;
        }
        // 3. Input or the next deadline.
        read_until_deadline(&mut conn, &mut socket, &mut input)?;
    }
}

/// The generator: the prompt's words in turn, `max_tokens` of them (16 if absent).
fn answer(request: &Request, route: &str) -> Result<Vec<Bytes>, StreamError> {
    if request.route.as_str() != route {
        return Err(StreamError::new(
            ErrorKind::NOT_FOUND,
            format!("no handler for route '{}'", request.route),
        ));
    }
    let invalid = |why: String| {
        StreamError::new(
            ErrorKind::INVALID_REQUEST,
            format!("expected JSON {{\"prompt\": \"...\", \"max_tokens\": N}}: {why}"),
        )
    };
    let json: serde_json::Value =
        serde_json::from_slice(&request.payload).map_err(|e| invalid(e.to_string()))?;
    let prompt = json
        .get("prompt")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| invalid("no \"prompt\" string".into()))?;
    let max_tokens = match json.get("max_tokens") {
        None => 16,
        Some(n) => n
            .as_u64()
            .filter(|n| *n <= MAX_TOKENS)
            .ok_or_else(|| invalid(format!("max_tokens {n} is not a count up to {MAX_TOKENS}")))?,
    };
    let mut words: Vec<Bytes> = prompt
        .split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    if words.is_empty() {
        words.push(Bytes::from_static(b"token"));
    }
    Ok((0..max_tokens as usize)
        .map(|i| words[i % words.len()].clone())
        .collect())
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

/// Blocks until bytes arrive or the connection's next deadline passes (a due deadline is
/// handled at once: std refuses a zero read timeout).
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
        None => None,
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
