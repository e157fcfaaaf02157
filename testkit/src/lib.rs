//! Test support shared by the adapters' integration tests: real `etcd` and `nats-server`
//! processes, each on free loopback ports in its own temporary directory, stopped (SIGTERM, then
//! SIGKILL) and cleaned up when dropped.
//!
//! Nothing here stands in for a server: if the binary is missing the test fails with a message
//! saying how to install it (`bash .ci/run` does). Binaries are found on `PATH`, or through
//! `DYNRT_ETCD_BIN` / `DYNRT_NATS_BIN`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod operator;
mod tls;

pub use operator::{OperatorMode, nkey_user};
pub use tls::TlsFiles;

/// How long a server may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A port that was free a moment ago, for a server a test starts (and may restart).
///
/// Taken from below Linux's ephemeral range (32768–60999), so that the kernel does not hand it
/// to some other socket's `connect` or `bind(0)` while the server is down — a restart on the
/// same port would then fail. Candidates are drawn at random and checked by binding them.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let keys = std::collections::hash_map::RandomState::new();
    for _ in 0..1_000 {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let port = LOW + (hasher.finish() % u64::from(HIGH - LOW)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    // Crowded: fall back to one the kernel picks.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

fn find_binary(env: &str, names: &[&str], install_hint: &str) -> PathBuf {
    locate_binary(env, names, install_hint).unwrap_or_else(|why| panic!("{why}"))
}

/// The binary at `$env`, else the first of `names` on `PATH` (or in /usr/sbin, /usr/local/bin);
/// an error saying where it was looked for and how to install it.
fn locate_binary(env: &str, names: &[&str], install_hint: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "${env} names {}, which is not a file",
                path.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/local/bin".into()]);
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "{} not found on PATH or in ${env}: {install_hint}",
        names[0]
    ))
}

const NATS_INSTALL_HINT: &str = "run `bash .ci/install-nats` (installs nats-server >= 2.10)";

/// Where `nats-server` is, or why it cannot be used: for callers that skip what needs it
/// (the benches) instead of failing as tests do.
pub fn nats_server_binary() -> Result<PathBuf, String> {
    locate_binary("DYNRT_NATS_BIN", &["nats-server"], NATS_INSTALL_HINT)
}

/// A nats-server for the bench cases `what`, or `None` after printing why they are skipped (no
/// binary, or a server that does not come up): a bench measures what it can instead of failing.
pub fn nats_server_for_bench(what: &str) -> Option<NatsServer> {
    if let Err(why) = nats_server_binary() {
        println!("{what}: skipped: {why}");
        return None;
    }
    match std::panic::catch_unwind(NatsServer::start) {
        Ok(server) => Some(server),
        Err(_) => {
            println!("{what}: skipped: nats-server did not start (its error is above)");
            None
        }
    }
}

/// Sends `GET path` over HTTP/1.0 and returns the status code and body, if the server answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((status, body))
}

fn wait_until(
    what: &str,
    log: &std::path::Path,
    child: &mut Child,
    mut ready: impl FnMut() -> bool,
) {
    // The server's own words, for the panic message.
    let log_tail = || {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited during start-up with {status}; its log ends:\n{}",
                log_tail()
            );
        }
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{what} did not become healthy within {START_TIMEOUT:?}; its log ends:\n{}",
        log_tail()
    );
}

fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SIGTERM first so the server shuts down cleanly; both stop in ~130 ms here.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A single-node etcd on loopback.
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    /// Starts etcd on two free ports and waits until `/health` says it is healthy.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dynrt-etcd-")
            .tempdir()
            .expect("creating a temp dir for etcd");
        let mut server = Self {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = find_binary(
            "DYNRT_ETCD_BIN",
            &["etcd"],
            "run `bash .ci/run` once (it installs etcd-server) or `apt-get install etcd-server`",
        );
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log file");
        let mut child = Command::new(bin)
            .args(["--name", "dynrt-test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("dynrt-test={peer}")])
            .args(["--logger=zap", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning etcd");
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        wait_until(
            "etcd",
            &self.dir.path().join("etcd.log"),
            &mut child,
            || matches!(http_get(addr, "/health"), Some((200, body)) if body.contains("true")),
        );
        self.child = Some(child);
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Stops the server (SIGTERM), keeping its data directory and ports for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    /// Starts the server again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A nats-server with JetStream on loopback.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    monitor_port: u16,
    /// Command-line arguments added to the defaults (authorisation, say).
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts nats-server (≥ 2.10) with JetStream and waits until it reports healthy.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server that accepts only `user` with `password`.
    pub fn start_with_user(user: &str, password: &str) -> Self {
        Self::start_with_args(&["--user", user, "--pass", password])
    }

    /// Starts a server that accepts only clients presenting `token`.
    pub fn start_with_token(token: &str) -> Self {
        Self::start_with_args(&["--auth", token])
    }

    /// Starts a server that accepts only a fresh nkey user, and returns it with that user's
    /// seed (`NATS_AUTH_NKEY`).
    pub fn start_with_nkey() -> (Self, String) {
        let dir = Self::new_dir();
        let (config, seed) = nkey_user();
        let path = dir.path().join("nkey.conf");
        std::fs::write(&path, config).expect("writing the nkey server config");
        let path = path.display().to_string();
        (Self::start_in(dir, &["-c", &path]), seed)
    }

    /// Starts a server that requires TLS with the certificate `files` made; with
    /// `verify_clients`, clients must also present a certificate of that CA (mutual TLS).
    /// Connect through [`Self::tls_url`].
    pub fn start_with_tls(files: &TlsFiles, verify_clients: bool) -> Self {
        let (cert, key, ca) = (
            files.server_cert().display().to_string(),
            files.server_key().display().to_string(),
            files.ca().display().to_string(),
        );
        let mut args = vec!["--tls", "--tlscert", &cert, "--tlskey", &key];
        if verify_clients {
            args.extend(["--tlscacert", &ca, "--tlsverify"]);
        }
        Self::start_with_args(&args)
    }

    /// Starts a server in operator mode (decentralised JWT authentication) trusting `mode`'s
    /// operator and account: only its users' credentials files connect.
    pub fn start_in_operator_mode(mode: &OperatorMode) -> Self {
        let config = mode.server_config().display().to_string();
        Self::start_with_args(&["-c", &config])
    }

    /// Starts a server with `args` added to the defaults (loopback, free ports, JetStream).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_in(Self::new_dir(), args)
    }

    fn new_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("dynrt-nats-")
            .tempdir()
            .expect("creating a temp dir for nats-server")
    }

    fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            dir,
            port: free_port(),
            monitor_port: free_port(),
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = find_binary("DYNRT_NATS_BIN", &["nats-server"], NATS_INSTALL_HINT);
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("nats log file");
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string(), "-js", "-sd"])
            .arg(self.dir.path().join("jetstream"))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning nats-server");
        let addr: SocketAddr = ([127, 0, 0, 1], self.monitor_port).into();
        wait_until(
            "nats-server",
            &self.dir.path().join("nats.log"),
            &mut child,
            || {
                matches!(
                    http_get(addr, "/healthz?js-enabled-only=true"),
                    Some((200, _))
                )
            },
        );
        self.child = Some(child);
    }

    /// The client URL, e.g. `nats://127.0.0.1:41235`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client URL with the `tls://` scheme (which makes a client require TLS), e.g.
    /// `tls://127.0.0.1:41235`.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Stops the server, keeping its ports and data for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    /// Starts the server again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The body of the monitoring endpoint `path` (`/varz`, `/subsz?subs=1`, …): JSON, or
    /// `None` when the server does not answer 200 within half a second.
    pub fn monitor(&self, path: &str) -> Option<String> {
        let addr: SocketAddr = ([127, 0, 0, 1], self.monitor_port).into();
        match http_get(addr, path) {
            Some((200, body)) => Some(body),
            _ => None,
        }
    }

    /// Whether the server process is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Where the server keeps its data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_starts_restarts_and_stops() {
        let mut etcd = EtcdServer::start();
        let addr: SocketAddr = ([127, 0, 0, 1], etcd.client_port).into();
        assert_eq!(
            http_get(addr, "/health").map(|r| r.0),
            Some(200),
            "{}",
            etcd.log()
        );
        etcd.restart();
        assert_eq!(http_get(addr, "/health").map(|r| r.0), Some(200));
        etcd.stop();
        assert!(
            http_get(addr, "/health").is_none(),
            "etcd still answers after stop"
        );
    }

    #[test]
    fn nats_starts_with_jetstream() {
        let nats = NatsServer::start();
        let addr: SocketAddr = ([127, 0, 0, 1], nats.monitor_port).into();
        let (status, body) = http_get(addr, "/varz").expect("monitor answers");
        assert_eq!(status, 200);
        assert!(body.contains("\"jetstream\""), "{body}");
        assert!(nats.url().starts_with("nats://127.0.0.1:"));
    }

    #[test]
    fn nats_with_a_user_says_so_in_its_varz() {
        let nats = NatsServer::start_with_user("alice", "s3cret");
        let addr: SocketAddr = ([127, 0, 0, 1], nats.monitor_port).into();
        let (_, body) = http_get(addr, "/varz").expect("monitor answers");
        assert!(body.contains("\"auth_required\": true"), "{body}");
    }
}
