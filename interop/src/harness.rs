//! Test support: the interop programs as real child processes (killed on drop), their stdout
//! events read line by line with timeouts, and the shared discovery backend they run on.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynrt_testkit::{EtcdServer, NatsServer};

/// Where the processes of one test find each other, and which planes they use.
pub enum Store {
    /// A file-store directory shared by the processes (`DYN_FILE_KV`); TCP request plane,
    /// ZMQ events.
    File(tempfile::TempDir),
    /// A real etcd on free loopback ports; TCP request plane, ZMQ events.
    Etcd(EtcdServer),
    /// The realistic Dynamo deployment: a real etcd for discovery and a real nats-server
    /// (`NATS_SERVER`) carrying the request plane (`DYN_REQUEST_PLANE=nats`) and the event
    /// plane (`DYN_EVENT_PLANE=nats`).
    EtcdNats {
        /// Discovery.
        etcd: EtcdServer,
        /// Request and event planes.
        nats: NatsServer,
    },
}

impl Store {
    /// A fresh, empty file store.
    pub fn file() -> Self {
        Self::File(tempfile::tempdir().expect("a temporary directory"))
    }

    /// A fresh etcd (testkit's `/usr/bin/etcd`).
    pub fn etcd() -> Self {
        Self::Etcd(EtcdServer::start())
    }

    /// A fresh etcd and a fresh nats-server (testkit's; nats-server ≥ 2.10).
    pub fn etcd_nats() -> Self {
        Self::EtcdNats {
            etcd: EtcdServer::start(),
            nats: NatsServer::start(),
        }
    }

    /// Whether the request plane is NATS (the record's transport is then `nats_tcp`).
    pub fn is_nats(&self) -> bool {
        matches!(self, Self::EtcdNats { .. })
    }

    /// The nats-server, on the NATS store.
    pub fn nats(&self) -> Option<&NatsServer> {
        match self {
            Self::EtcdNats { nats, .. } => Some(nats),
            _ => None,
        }
    }

    /// The nats-server, on the NATS store, to stop and start under running processes.
    pub fn nats_mut(&mut self) -> Option<&mut NatsServer> {
        match self {
            Self::EtcdNats { nats, .. } => Some(nats),
            _ => None,
        }
    }

    /// The environment that points a Dynamo or dynrt process at this store. On the file and
    /// etcd stores: request plane over TCP on loopback and no NATS anywhere (1.6.1 opens a
    /// NATS client only when the request plane or the event plane is NATS, or `NATS_SERVER`
    /// is set). On the NATS store: both planes on NATS; answers still come back over the
    /// call-home TCP stream, on loopback.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let (request_plane, event_plane) = if self.is_nats() {
            ("nats", "nats")
        } else {
            ("tcp", "zmq")
        };
        let mut env = vec![
            ("DYN_REQUEST_PLANE", request_plane.to_owned()),
            ("DYN_EVENT_PLANE", event_plane.to_owned()),
            ("DYN_RESPONSE_PLANE", "tcp".to_owned()),
            ("DYN_TCP_RPC_HOST", "127.0.0.1".to_owned()),
            ("DYN_TCP_RESPONSE_STREAM_HOST", "127.0.0.1".to_owned()),
            ("DYN_LOG", "warn".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        match self {
            Self::File(dir) => {
                env.push(("DYN_DISCOVERY_BACKEND", "file".to_owned()));
                env.push(("DYN_FILE_KV", dir.path().display().to_string()));
            }
            Self::Etcd(etcd) => {
                env.push(("DYN_DISCOVERY_BACKEND", "etcd".to_owned()));
                env.push(("ETCD_ENDPOINTS", etcd.endpoint()));
            }
            Self::EtcdNats { etcd, nats } => {
                env.push(("DYN_DISCOVERY_BACKEND", "etcd".to_owned()));
                env.push(("ETCD_ENDPOINTS", etcd.endpoint()));
                env.push(("NATS_SERVER", nats.url()));
            }
        }
        env
    }
}

/// Variables a developer's shell may set that would change what the programs do.
const CLEARED: &[&str] = &[
    "NATS_SERVER",
    "DYN_EVENT_PLANE_CODEC",
    "DYN_EVENT_PLANE_HOST",
    "DYN_ZMQ_BROKER_URL",
    "DYN_ZMQ_BROKER_ENABLED",
    "ZMQ_BROKER_XSUB_BIND",
    "ZMQ_BROKER_XPUB_BIND",
    "ZMQ_BROKER_NAMESPACE",
    "DYN_REQUEST_PLANE_CODEC",
    "DYN_SYSTEM_PORT",
    "DYN_SYSTEM_ENABLED",
    "DYN_TCP_RPC_PORT",
    "DYN_TCP_RESPONSE_STREAM_PORT",
    "ETCD_LEASE_TTL",
];

/// One running program. Killed (SIGKILL) and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line read so far, for failure messages.
    transcript: Vec<String>,
    stderr: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program` with `args` on `store`'s environment.
    pub fn spawn(name: &str, program: &Path, args: &[&str], store: &Store) -> Self {
        Self::spawn_with(name, program, args, store, &[])
    }

    /// Starts `program` with `args` on `store`'s environment plus `extra` (which wins).
    pub fn spawn_with(
        name: &str,
        program: &Path,
        args: &[&str],
        store: &Store,
        extra: &[(&str, String)],
    ) -> Self {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in CLEARED {
            command.env_remove(var);
        }
        command.envs(store.env());
        command.envs(extra.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                // Keep the tail only: a failing program's last words are what matter.
                if s.len() > 64 * 1024 {
                    let cut = s.len() - 32 * 1024;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            transcript: Vec::new(),
            stderr,
            exit: None,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the program printed so far, for failure messages.
    pub fn report(&self) -> String {
        let tail: Vec<&String> = self.transcript.iter().rev().take(20).rev().collect();
        format!(
            "--- {} stdout ({} lines, last 20):\n{}\n--- {} stderr (tail):\n{}",
            self.name,
            self.transcript.len(),
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// Every stdout line read so far.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// The next stdout line, or `None` at end of output or after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.transcript.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads lines until one starts with `prefix` (after any indentation); returns the rest of
    /// that line. Panics with
    /// the program's output if it does not come within `timeout`.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) => {
                    if let Some(rest) = line.trim_start().strip_prefix(prefix) {
                        return rest.trim_start().to_owned();
                    }
                }
                None => panic!(
                    "{} did not print {prefix:?} within {timeout:?}\n{}",
                    self.name,
                    self.report()
                ),
            }
        }
    }

    /// Reads every line until the program exits (or `timeout`, which panics); returns them.
    pub fn finish(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let start = self.transcript.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => self.transcript.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        // stdout closed: the process is exiting; reap it (bounded).
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.transcript[start..].to_vec()
    }

    /// The exit status, once [`Self::finish`] saw the program exit.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// What the program wrote on stderr so far (the tail of it, when it wrote a lot).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Asks the program to stop (SIGTERM) and reads its stdout until it exits (panics after
    /// `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Vec<String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "cannot send SIGTERM to {}",
            self.name
        );
        self.finish(timeout)
    }

    /// Kills the program now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The programs of this crate, located next to the test binary (cargo puts binaries in the
/// target profile directory, the test binary one level below it, in `deps/`).
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo test` builds them)",
        path.display()
    );
    path
}
