//! `dynrt broker` as a real process: our PUB (connected to its XSUB side) reaches our SUB
//! (connected to its XPUB side) through it; with a namespace it registers the 1.6.1 broker
//! record in a file store and removes it on SIGTERM; a bad endpoint is one line naming it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::zmq::{ZmqConfig, ZmqPub, ZmqSub};

const LIMIT: Duration = Duration::from_secs(30);

fn dynrt(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynrt"));
    for (key, _) in std::env::vars_os() {
        if ["DYN_", "ETCD_", "NATS_", "ZMQ_"]
            .iter()
            .any(|p| key.as_encoded_bytes().starts_with(p.as_bytes()))
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("dynrt starts");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// The rest of the first stdout line that starts with `prefix` (trimmed).
    fn line_starting(&self, prefix: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting {prefix:?} within {LIMIT:?}"));
            if let Some(rest) = line.trim_start().strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()));
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dynrt broker did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files under `dir` whose contents mention `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path)
                && text.contains(needle)
            {
                found.push(text);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_forwards_and_registers_itself_until_sigterm() {
    let store = tempfile::tempdir().unwrap();
    let mut cmd = dynrt(&[
        "broker",
        "--xsub",
        "tcp://127.0.0.1:0",
        "--xpub",
        "tcp://127.0.0.1:0",
        "--namespace",
        "brokertest",
    ]);
    cmd.env("DYN_DISCOVERY_BACKEND", "file")
        .env("DYN_FILE_KV", store.path());
    let mut broker = Running::start(cmd);
    let xsub = broker
        .line_starting("xsub")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let xpub = broker
        .line_starting("xpub")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    broker.line_starting("registered in namespace brokertest");

    // The record 1.6.1's DYN_ZMQ_BROKER_ENABLED clients look for.
    let records = files_containing(store.path(), "ZmqBroker");
    assert_eq!(records.len(), 1, "one broker record");
    let record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    let text = record.to_string();
    assert!(
        text.contains("zmq_broker") && text.contains("brokertest"),
        "{text}"
    );
    assert!(text.contains(&xsub) && text.contains(&xpub), "{text}");

    let rt = TokioRuntime::current();
    let publisher = ZmqPub::new(rt.clone(), ZmqConfig::default());
    publisher.connect(&xsub).unwrap();
    let sub = ZmqSub::new(rt, ZmqConfig::default());
    sub.subscribe("events");
    sub.connect(&xpub).unwrap();
    // The subscription crosses the broker to the publisher; until then sends reach no one.
    let received = tokio::time::timeout(LIMIT, async {
        loop {
            publisher
                .send(&[
                    Bytes::from_static(b"events.x"),
                    Bytes::from_static(b"payload"),
                ])
                .unwrap();
            publisher
                .send(&[Bytes::from_static(b"other"), Bytes::from_static(b"no")])
                .unwrap();
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
                break m;
            }
        }
    })
    .await
    .expect("a message through the broker");
    assert_eq!(
        received,
        [
            Bytes::from_static(b"events.x"),
            Bytes::from_static(b"payload")
        ]
    );

    let status = broker.signal_and_wait("TERM");
    assert!(status.success(), "{status}");
    assert!(
        files_containing(store.path(), "ZmqBroker").is_empty(),
        "the record is removed on shutdown"
    );
}

#[test]
fn a_bad_endpoint_is_one_line_naming_it() {
    let out = dynrt(&[
        "broker",
        "--xsub",
        "udp://x:1",
        "--xpub",
        "tcp://127.0.0.1:0",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("udp://x:1") && line.contains("XSUB"),
        "{stderr}"
    );
}
