//! `dynrt publish` and `dynrt subscribe` as real processes over a file store: events printed
//! as `publisher sequence payload`, a publisher killed with SIGKILL under a live subscriber
//! (which carries on and picks up the next publisher). Every wait is bounded; every child is
//! killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// `dynrt` with no dynrt setting inherited from the test's environment, on a file store.
fn dynrt(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynrt"));
    for (key, _) in std::env::vars_os() {
        if ["DYN_", "ETCD_", "NATS_"]
            .iter()
            .any(|p| key.as_encoded_bytes().starts_with(p.as_bytes()))
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("DYN_DISCOVERY_BACKEND", "file")
        .env("DYN_FILE_KV", dir);
    cmd
}

/// A child whose stdout lines arrive on a channel; killed (SIGKILL) on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("dynrt starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next stdout line as (publisher, sequence, payload).
    fn event(&mut self) -> (u64, u64, String) {
        let line = self
            .lines
            .recv_timeout(LIMIT)
            .expect("an event line within the limit");
        let mut parts = line.splitn(3, ' ');
        let publisher = parts.next().and_then(|p| p.parse().ok());
        let sequence = parts.next().and_then(|s| s.parse().ok());
        match (publisher, sequence, parts.next()) {
            (Some(p), Some(s), Some(payload)) => (p, s, payload.to_owned()),
            _ => panic!("not an event line: {line:?}"),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn subscribe_prints_events_and_survives_a_publisher_killed_with_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sub = Proc::start(dynrt(
        &["subscribe", "dyn://demo.backend", "kv-events"],
        dir.path(),
    ));
    let mut first = Proc::start(dynrt(
        &[
            "publish",
            "dyn://demo.backend",
            "kv-events",
            r#"{"block":1,"tokens":[1,2,3]}"#,
            "--every",
            "50ms",
        ],
        dir.path(),
    ));
    let (id1, seq1, payload) = sub.event();
    assert_eq!(payload, r#"{"block":1,"tokens":[1,2,3]}"#);
    let (id, seq) = {
        let (id, seq, _) = sub.event();
        (id, seq)
    };
    assert_eq!(id, id1);
    assert_eq!(seq, seq1 + 1, "in order, none missing");

    // kill -9: no unregistration, no goodbye. The subscriber carries on.
    first.kill();
    let mut second = Proc::start(dynrt(
        &[
            "publish",
            "dyn://demo.backend",
            "kv-events",
            r#"{"block":2}"#,
            "--every",
            "50ms",
        ],
        dir.path(),
    ));
    let deadline = Instant::now() + LIMIT;
    loop {
        let (id, _, payload) = sub.event();
        if id != id1 {
            assert_eq!(payload, r#"{"block":2}"#);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second publisher never reached the subscriber"
        );
    }
    second.kill();
    assert!(
        sub.child.try_wait().expect("status").is_none(),
        "the subscriber is still running"
    );
}

#[test]
fn publish_and_subscribe_refuse_bad_scopes_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dynrt(&["publish", "dyn://demo..x", "t", "{}"], dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected dyn://namespace[.component[.endpoint]]"),
        "{stderr}"
    );
    let out = dynrt(&["publish", "dyn://demo", "t", "{not json"], dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}
