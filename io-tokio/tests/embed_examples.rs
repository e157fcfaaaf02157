//! dynrt-core's embedding examples (`core/examples/blocking_client.rs` and
//! `blocking_server.rs`: std::net, no async runtime) against the real `dynrt` binary: the
//! blocking client streams from `dynrt serve`, `dynrt call` gets its answer from the blocking
//! server, and the two examples talk to each other with an answer far larger than the
//! credit. The examples are compiled in as modules, so CI checks exactly the code users read.
//! Every wait is bounded; every child is killed on drop.

#[allow(dead_code)]
#[path = "../../core/examples/blocking_client.rs"]
mod blocking_client;
#[allow(dead_code)]
#[path = "../../core/examples/blocking_server.rs"]
mod blocking_server;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dynrt_core::discovery::Bucket;
use dynrt_core::discovery::listing::file_store_dir;
use dynrt_core::names::EndpointId;

const LIMIT: Duration = Duration::from_secs(60);

/// `dynrt` on the file backend at `dir`, with no dynrt setting inherited from the test's
/// environment.
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

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` on a thread and returns its result, failing the test after `LIMIT`.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|e| panic!("{what} did not finish within {LIMIT:?}: {e}"))
}

fn endpoint(url: &str) -> EndpointId {
    url.parse().expect("a valid endpoint")
}

/// Calls through the blocking client; the items as text, or the error's text.
fn client_call(dir: &Path, url: &str, request: &str) -> Result<Vec<String>, String> {
    let (dir, endpoint, request) = (dir.to_owned(), endpoint(url), request.to_owned());
    bounded("the blocking client", move || {
        let mut items = Vec::new();
        blocking_client::call(&dir, &endpoint, request.as_bytes(), |item| {
            items.push(String::from_utf8_lossy(item).into_owned());
            Ok(())
        })
        .map(|()| items)
        .map_err(|e| e.to_string())
    })
}

#[test]
fn the_blocking_client_streams_from_dynrt_serve() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = "dyn://embed.backend.generate";
    let mut serve = dynrt(&["serve", url], dir.path());
    serve
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut worker = Running(serve.spawn().expect("dynrt serve starts"));
    // `dynrt serve` prints its instance once it is registered.
    let stdout = worker.0.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("dynrt serve prints its instance");
        if line.trim_start().starts_with("instance") {
            break;
        }
    }

    let items = client_call(
        dir.path(),
        url,
        r#"{"prompt":"hello world","max_tokens":4}"#,
    )
    .expect("the call succeeds");
    assert_eq!(items, ["hello", "world", "hello", "world"]);

    // The worker's refusal arrives as the stream's typed error.
    let error = client_call(dir.path(), url, "not json").expect_err("refused");
    assert!(error.contains("InvalidRequest"), "{error}");

    // No instance of another endpoint: a clear error naming it.
    let error = client_call(dir.path(), "dyn://embed.backend.other", "{}").expect_err("none");
    assert!(
        error.contains("no instance of dyn://embed.backend.other"),
        "{error}"
    );
}

#[test]
fn dynrt_call_gets_its_answer_from_the_blocking_server() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = "dyn://embed.blocking.generate";
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let root = dir.path().to_owned();
    // One connection: the one `dynrt call` opens.
    let server = std::thread::spawn(move || {
        blocking_server::serve(listener, &root, endpoint(url), Some(1), |line| {
            eprintln!("[blocking_server] {line}");
        })
        .map_err(|e| e.to_string())
    });

    let mut call = dynrt(
        &[
            "call",
            url,
            r#"{"prompt":"hi there","max_tokens":3}"#,
            "--wait",
            "20s",
        ],
        dir.path(),
    );
    call.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Running(call.spawn().expect("dynrt call starts"));
    let mut stdout = child.0.stdout.take().expect("piped");
    let mut stderr = child.0.stderr.take().expect("piped");
    let (out, err) = bounded("dynrt call", move || {
        let mut out = String::new();
        let mut err = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        (out, err)
    });
    let status = bounded("dynrt call's exit", move || {
        let status = child.0.wait().expect("wait");
        drop(child);
        status
    });
    assert!(status.success(), "dynrt call failed: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hi", "there", "hi"],
        "{err}"
    );

    // The server served its one connection, then left discovery.
    bounded("the blocking server", move || server.join())
        .expect("the server thread does not panic")
        .expect("the server stops cleanly");
    let instances = dir.path().join(file_store_dir(Bucket::Instances));
    let left: Vec<_> = std::fs::read_dir(&instances)
        .expect("the instances directory")
        .collect();
    assert!(left.is_empty(), "records left behind: {left:?}");
}

#[test]
fn the_examples_stream_an_answer_far_larger_than_the_credit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = "dyn://embed.blocking.large";
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let root = dir.path().to_owned();
    let server = std::thread::spawn(move || {
        blocking_server::serve(listener, &root, endpoint(url), Some(1), |_| {})
            .map_err(|e| e.to_string())
    });
    // 100 000 items of 64 bytes: 6.4 MB through a 1 MiB stream credit and a 256 KiB queue,
    // so the server resumes on `Writable` many times and the client releases as it reads.
    let word = "w".repeat(64);
    let request = format!(r#"{{"prompt":"{word}","max_tokens":100000}}"#);
    let mut items = None;
    let deadline = Instant::now() + LIMIT;
    // The server registers before it accepts, but the test may look first.
    while items.is_none() {
        match client_call(dir.path(), url, &request) {
            Ok(got) => items = Some(got),
            Err(e) if e.contains("no instance") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the call failed: {e}"),
        }
    }
    let items = items.expect("set above");
    assert_eq!(items.len(), 100_000);
    assert!(items.iter().all(|item| *item == word));
    bounded("the blocking server", move || server.join())
        .expect("the server thread does not panic")
        .expect("the server stops cleanly");
}
