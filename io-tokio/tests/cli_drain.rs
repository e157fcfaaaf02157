//! `dynrt serve`'s shutdown, run as a real process: the drain waits until a slow caller's
//! answer is written, a drain cut off by its limit and a lost lease exit with their own codes,
//! and a second SIGTERM ends the drain. The caller is a raw mux client (dynrt-core's `Conn` on
//! a blocking socket) so the test decides when it reads. Every wait is bounded; every child is
//! killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, Event};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute};
use dynrt_core::shutdown::{EXIT_DRAIN_FORCED, EXIT_DRAIN_TIMED_OUT, EXIT_LEASE_LOST};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::mux::{StreamId, WireStr};

const LIMIT: Duration = Duration::from_secs(60);
const ENDPOINT: &str = "dyn://demo.backend.generate";
/// One-byte items within the default 1 MiB stream credit, so the handler finishes at once;
/// with frame headers they are ~10 MB on the wire, more than loopback socket buffers hold
/// while the caller does not read, so most of the answer waits in the worker.
const TOKENS: usize = 1_000_000;

/// `dynrt` with no dynrt setting inherited from the test's environment.
fn dynrt(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynrt"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if ["DYN_", "ETCD_", "NATS_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            cmd.env_remove(&key);
        }
    }
    cmd.args(args).env("NO_COLOR", "1");
    cmd
}

fn file_backend(cmd: &mut Command, dir: &Path) {
    cmd.env("DYN_DISCOVERY_BACKEND", "file")
        .env("DYN_FILE_KV", dir);
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

/// A `dynrt serve` child whose stdout lines arrive on a channel; killed when dropped.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    instance: String,
    addr: SocketAddr,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("dynrt serve starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut worker = Self {
            child,
            lines,
            seen: Vec::new(),
            instance: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = worker.line_containing("instance");
        worker.instance = line.split_whitespace().last().expect("an id").to_owned();
        let line = worker.line_containing("address");
        worker.addr = line
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in '{line}'"));
        worker
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line_containing(&mut self, what: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "dynrt serve printed no line with '{what}' ({e}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded by `limit`) for the worker to exit.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dynrt serve still running {limit:?} later; it printed:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn route(&self) -> String {
        let instance = InstanceId::parse_hex(&self.instance).expect("a hex instance id");
        let endpoint = EndpointId::parse_url(ENDPOINT).expect("a valid endpoint");
        TcpRoute::new(instance, endpoint).to_string()
    }
}

/// A caller speaking mux by hand on a blocking socket, so it reads only when told to.
struct RawCaller {
    tcp: TcpStream,
    conn: Conn,
    read: BytesMut,
    id: StreamId,
    items: usize,
    ended: Option<Result<(), String>>,
}

impl RawCaller {
    /// Connects, sends one generate request, reads until the first item arrived.
    fn call(worker: &Worker, tokens: usize) -> Self {
        Self::call_with(worker, "a", tokens)
    }

    /// Connects, sends one generate request, reads until the first item arrived.
    fn call_with(worker: &Worker, prompt: &str, tokens: usize) -> Self {
        let tcp = TcpStream::connect(worker.addr).expect("connect to the worker");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let config = ConnConfig {
            keepalive_interval: None,
            ..ConnConfig::default()
        };
        let mut caller = Self {
            tcp,
            conn: Conn::client(config, Instant::now()).expect("valid config"),
            read: BytesMut::new(),
            id: StreamId(0),
            items: 0,
            ended: None,
        };
        caller.flush();
        while !caller.conn.is_established() {
            assert!(caller.read_once(), "the worker closed during the handshake");
        }
        let payload = format!(r#"{{"prompt":"{prompt}","max_tokens":{tokens}}}"#);
        caller.id = caller
            .conn
            .open(
                WireStr::from(worker.route()),
                Bytes::new(),
                Bytes::from(payload),
            )
            .expect("open");
        caller.flush();
        while caller.items == 0 {
            assert!(caller.read_once(), "the worker closed before answering");
        }
        caller
    }

    fn flush(&mut self) {
        let mut out = OutBuf::new();
        while self.conn.poll_transmit(&mut out) {}
        if !out.is_empty() {
            // A worker that went away shows up on the next read.
            let _ = self.tcp.write_all(&out.take_contiguous());
        }
    }

    /// One read, fed to the core; items counted and released. False once the socket ended.
    fn read_once(&mut self) -> bool {
        let mut chunk = vec![0u8; 256 * 1024];
        let open = match self.tcp.read(&mut chunk) {
            Ok(0) | Err(_) => {
                self.conn.handle_transport_closed(Instant::now());
                false
            }
            Ok(n) => {
                self.read.extend_from_slice(&chunk[..n]);
                self.conn.handle_input(&mut self.read, Instant::now());
                true
            }
        };
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Data { id, payload, more } if id == self.id => {
                    if !more {
                        self.items += 1;
                    }
                    let _ = self.conn.release(id, payload.len() as u64);
                }
                Event::End { id, result } if id == self.id => {
                    self.ended = Some(result.map_err(|e| e.to_string()));
                }
                _ => {}
            }
        }
        self.flush();
        open
    }

    /// Reads until the stream ends or the connection does, then closes the socket, as a
    /// client does once it has its answer (the worker waits for that before it counts the
    /// answer delivered).
    fn read_to_end(&mut self) {
        while self.ended.is_none() && self.read_once() {}
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}

fn serve_on_file_store(dir: &Path, drain_limit_secs: u64) -> Worker {
    let mut cmd = dynrt(&["serve"]);
    file_backend(&mut cmd, dir);
    cmd.env(
        "DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS",
        drain_limit_secs.to_string(),
    );
    Worker::start(cmd)
}

/// Lets the worker's handler produce its whole answer (a pause, not a measurement: what is
/// asserted holds however long the handler takes).
fn let_the_handler_run() {
    std::thread::sleep(Duration::from_secs(2));
}

#[test]
fn a_slow_callers_answer_is_delivered_whole_before_the_worker_reports_clean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = serve_on_file_store(dir.path(), 30);
    let mut caller = RawCaller::call(&worker, TOKENS);
    let_the_handler_run();
    signal(worker.pid(), "TERM");
    worker.line_containing("stopping: SIGTERM");
    // The caller reads nothing for a while: most of the answer waits in the worker.
    std::thread::sleep(Duration::from_secs(2));
    caller.read_to_end();
    let status = worker.exit_within(LIMIT);
    let report = worker
        .seen
        .iter()
        .find(|l| l.starts_with("shutdown:"))
        .cloned()
        .unwrap_or_else(|| worker.line_containing("shutdown:"));
    // Either the whole answer arrived, or the worker must not say its drain was clean.
    if report.contains("clean") {
        assert_eq!(
            caller.ended,
            Some(Ok(())),
            "the worker reported '{report}' but the caller's stream ended so after {} of \
             {TOKENS} items",
            caller.items
        );
        assert_eq!(caller.items, TOKENS, "{report}");
        assert_eq!(status.code(), Some(0), "{report}");
    } else {
        assert_ne!(status.code(), Some(0), "{report}");
    }
    // With a 30 s limit and a caller that reads again after 2 s, the answer is delivered.
    assert_eq!(caller.items, TOKENS, "{report}");
    assert!(report.contains("shutdown: clean"), "{report}");
}

/// The handler is still producing when SIGTERM arrives (its answer is four times the stream
/// credit, so it waits for the stalled caller): the GOAWAY goes out ahead of the answer's end,
/// and the caller, reading again, must still get every item before the connection closes.
#[test]
fn a_slow_caller_gets_the_whole_answer_when_the_handler_finishes_during_the_drain() {
    const WORDS: usize = 1_000_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = serve_on_file_store(dir.path(), 30);
    let mut caller = RawCaller::call_with(&worker, "abcd", WORDS);
    let_the_handler_run();
    signal(worker.pid(), "TERM");
    worker.line_containing("stopping: SIGTERM");
    std::thread::sleep(Duration::from_secs(2));
    caller.read_to_end();
    let report = worker.line_containing("shutdown:");
    let status = worker.exit_within(LIMIT);
    assert_eq!(
        caller.ended,
        Some(Ok(())),
        "after {} of {WORDS} items; worker: {report}",
        caller.items
    );
    assert_eq!(caller.items, WORDS, "{report}");
    assert!(report.contains("shutdown: clean"), "{report}");
    assert_eq!(status.code(), Some(0), "{report}");
}

#[test]
fn a_drain_cut_off_by_its_limit_exits_with_its_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = serve_on_file_store(dir.path(), 1);
    let caller = RawCaller::call(&worker, TOKENS);
    let_the_handler_run();
    signal(worker.pid(), "TERM");
    let report = worker.line_containing("shutdown:");
    let status = worker.exit_within(LIMIT);
    assert!(report.contains("cut off"), "{report}");
    assert!(report.contains("1 requests in flight"), "{report}");
    assert_eq!(
        status.code(),
        Some(i32::from(EXIT_DRAIN_TIMED_OUT)),
        "{report}"
    );
    drop(caller);
}

#[test]
fn a_second_sigterm_ends_the_drain() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A limit far beyond the test's bound: only the second signal can end this drain in time.
    let mut worker = serve_on_file_store(dir.path(), 600);
    let caller = RawCaller::call(&worker, TOKENS);
    let_the_handler_run();
    signal(worker.pid(), "TERM");
    worker.line_containing("stopping: SIGTERM");
    signal(worker.pid(), "TERM");
    let report = worker.line_containing("shutdown:");
    let status = worker.exit_within(LIMIT);
    assert!(report.contains("second signal"), "{report}");
    assert_eq!(
        status.code(),
        Some(i32::from(EXIT_DRAIN_FORCED)),
        "{report}"
    );
    drop(caller);
}

#[test]
fn a_worker_whose_file_lease_is_lost_exits_with_its_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = serve_on_file_store(dir.path(), 5);
    // Someone else removes this worker's records (as a peer expiring a stalled worker would).
    let mut removed = 0;
    for entry in walk(dir.path()) {
        if std::fs::read_to_string(&entry).is_ok_and(|text| text.contains(&worker.instance)) {
            std::fs::remove_file(&entry).expect("remove a record");
            removed += 1;
        }
    }
    assert!(removed > 0, "no file of instance {} found", worker.instance);
    let stopping = worker.line_containing("stopping:");
    assert!(stopping.contains("lease"), "{stopping}");
    let report = worker.line_containing("shutdown:");
    let status = worker.exit_within(LIMIT);
    assert!(report.contains("lease lost"), "{report}");
    assert_eq!(status.code(), Some(i32::from(EXIT_LEASE_LOST)), "{report}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[cfg(feature = "etcd")]
#[test]
fn a_worker_whose_etcd_lease_is_revoked_exits_with_its_code() {
    use dynrt_testkit::EtcdServer;
    let etcd = EtcdServer::start();
    let mut cmd = dynrt(&["serve"]);
    cmd.env("DYN_DISCOVERY_BACKEND", "etcd")
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        // No NATS here: zmq events, so no NATS client is opened.
        .env("DYN_EVENT_PLANE", "zmq")
        // The keep-alive notices the revoked lease within about a third of the TTL.
        .env("ETCD_LEASE_TTL", "3")
        .env("DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS", "5");
    let mut worker = Worker::start(cmd);
    // The instance id is the etcd lease id, in hex as etcdctl takes it.
    let revoked = Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "lease",
            "revoke",
            &worker.instance,
        ])
        .output()
        .expect("etcdctl runs (installed with etcd)");
    assert!(
        revoked.status.success(),
        "etcdctl lease revoke: {}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let stopping = worker.line_containing("stopping:");
    assert!(stopping.contains("lease"), "{stopping}");
    let report = worker.line_containing("shutdown:");
    let status = worker.exit_within(LIMIT);
    assert!(report.contains("lease lost"), "{report}");
    assert_eq!(status.code(), Some(i32::from(EXIT_LEASE_LOST)), "{report}");
}
