//! The `dynrt` command-line tool, run as a real binary: the demo, a worker on the `file` and
//! `etcd` backends with `ls` and `call` against it, and the one-line errors for bad input,
//! bad settings and an unreachable etcd. Every wait is bounded; every child is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(feature = "etcd")]
use dynrt_testkit::EtcdServer;

const LIMIT: Duration = Duration::from_secs(60);

/// `dynrt` with no dynrt setting inherited from the test's environment.
fn dynrt(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynrt"));
    for (key, _) in std::env::vars() {
        if ["DYN_", "ETCD_", "NATS_"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).env("NO_COLOR", "1");
    cmd
}

fn file_backend(cmd: &mut Command, dir: &Path) {
    cmd.env("DYN_DISCOVERY_BACKEND", "file")
        .env("DYN_FILE_KV", dir);
}

/// A child process, killed when dropped (so a failing test leaves nothing behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Running(cmd.spawn().expect("dynrt starts"));
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = read(child.0.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.0.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "dynrt {cmd:?} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number in the summary row `name` (`requests        1234`).
fn summary_value(summary: &str, name: &str) -> f64 {
    summary
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            rest.starts_with(' ')
                .then(|| rest.split_whitespace().next())?
        })
        .unwrap_or_else(|| panic!("no '{name}' row in:\n{summary}"))
        .parse()
        .unwrap_or_else(|_| panic!("'{name}' is not a number in:\n{summary}"))
}

fn assert_no_panic(stderr: &str) {
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn demo_serves_a_cluster_in_one_process_and_prints_the_summary() {
    let out = run(
        dynrt(&[
            "demo",
            "--duration",
            "1s",
            "--workers",
            "2",
            "--concurrency",
            "8",
        ]),
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(summary_value(&stdout, "requests") > 0.0, "{stdout}");
    assert!(summary_value(&stdout, "items/s") > 0.0, "{stdout}");
    assert_eq!(summary_value(&stdout, "errors"), 0.0, "{stdout}");
    assert_eq!(summary_value(&stdout, "workers"), 2.0, "{stdout}");
    assert!(stdout.contains("latency p99"), "{stdout}");
    assert_eq!(stdout.matches(": clean, drained in").count(), 3, "{stdout}");
    // Not a terminal: plain progress lines on stderr, at least one.
    assert!(
        stderr.contains("requests") && stderr.contains("items"),
        "{stderr}"
    );
}

/// A `dynrt serve` child whose stdout lines arrive on a channel.
struct Worker {
    child: Running,
    lines: mpsc::Receiver<String>,
    instance: String,
}

impl Worker {
    fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = Running(cmd.spawn().expect("dynrt serve starts"));
        let stdout = child.0.stdout.take().expect("piped");
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
            instance: String::new(),
        };
        let line = worker.line_containing("instance");
        worker.instance = line.split_whitespace().last().expect("an id").to_owned();
        worker
    }

    fn line_containing(&mut self, what: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(e) => panic!("dynrt serve printed no line with '{what}': {e}"),
            }
        }
    }

    /// SIGTERM, then the graceful shutdown's report line.
    fn terminate(mut self) -> String {
        let pid = self.child.0.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let report = self.line_containing("shutdown:");
        let deadline = Instant::now() + LIMIT;
        while self.child.0.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "dynrt serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        report
    }
}

/// `ls` shows the worker, `call` streams its tokens (round robin and direct), invalid JSON is
/// refused before anything is sent, and SIGTERM drains it cleanly.
fn serve_ls_call(configure: impl Fn(&mut Command)) {
    let mut serve = dynrt(&["serve"]);
    configure(&mut serve);
    let worker = Worker::start(serve);

    let mut ls = dynrt(&["ls"]);
    configure(&mut ls);
    let out = run(ls, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    let row = stdout
        .lines()
        .find(|l| l.contains(&worker.instance))
        .unwrap_or_else(|| panic!("ls does not show {}:\n{stdout}", worker.instance));
    assert!(row.starts_with("dyn://demo.backend.generate"), "{row}");
    assert!(
        row.contains("127.0.0.1:") && row.ends_with("mux v1"),
        "{row}"
    );

    let mut ls = dynrt(&["ls", "dyn://other"]);
    configure(&mut ls);
    let out = run(ls, LIMIT);
    assert!(out.status.success());
    assert!(!text(&out.stdout).contains(&worker.instance));

    let request = r#"{"prompt":"hi there","max_tokens":3}"#;
    for extra in [&[][..], &["--instance", worker.instance.as_str()][..]] {
        let mut call = dynrt(&["call", "dyn://demo.backend.generate", request]);
        call.args(extra);
        configure(&mut call);
        let out = run(call, LIMIT);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(text(&out.stdout), "hi\nthere\nhi\n", "{stderr}");
    }

    let mut call = dynrt(&["call", "dyn://demo.backend.generate", r#"{"prompt": "#]);
    configure(&mut call);
    let out = run(call, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
    assert_no_panic(&stderr);

    // Valid JSON the generator refuses: the handler's error, exit 1.
    let mut call = dynrt(&["call", "dyn://demo.backend.generate", r#"{"max_tokens":3}"#]);
    configure(&mut call);
    let out = run(call, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("InvalidRequest"), "{stderr}");

    let report = worker.terminate();
    assert!(report.contains("shutdown: clean"), "{report}");
}

#[test]
fn serve_then_ls_and_call_through_a_file_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    serve_ls_call(|cmd| {
        file_backend(cmd, dir.path());
    });
}

#[cfg(feature = "etcd")]
#[test]
fn serve_then_ls_and_call_through_etcd() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    serve_ls_call(|cmd| {
        cmd.env("DYN_DISCOVERY_BACKEND", "etcd")
            .env("ETCD_ENDPOINTS", &endpoint);
    });
}

#[test]
fn call_with_invalid_json_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut call = dynrt(&["call", "dyn://demo.backend.generate", "not json"]);
    file_backend(&mut call, dir.path());
    let out = run(call, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("dynrt: the request is not valid JSON") && stderr.contains("not json"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn call_without_a_worker_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut call = dynrt(&[
        "call",
        "dyn://demo.backend.generate",
        "{}",
        "--wait",
        "200ms",
    ]);
    file_backend(&mut call, dir.path());
    let out = run(call, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no instance of dyn://demo.backend.generate"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
}

#[cfg(feature = "etcd")]
#[test]
fn unreachable_etcd_is_one_line_naming_it_and_the_alternatives() {
    let mut ls = dynrt(&["ls"]);
    ls.env("DYN_DISCOVERY_BACKEND", "etcd")
        .env("ETCD_ENDPOINTS", "http://127.0.0.1:1");
    let out = run(ls, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for needle in ["http://127.0.0.1:1", "DYN_DISCOVERY_BACKEND=file", "mem"] {
        assert!(stderr.contains(needle), "'{needle}' missing: {stderr}");
    }
    assert_no_panic(&stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_bad_setting_is_an_error_naming_the_variable() {
    for command in [&["ls"][..], &["serve"][..]] {
        let mut cmd = dynrt(command);
        cmd.env("DYN_DISCOVERY_BACKEND", "file")
            .env("DYN_TCP_RPC_PORT", "abc");
        let out = run(cmd, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("DYN_TCP_RPC_PORT: 'abc' is not a port number"),
            "{command:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn mem_discovery_is_refused_for_tools_that_look_at_other_processes() {
    for command in [&["ls"][..], &["call", "dyn://a.b.c", "{}"][..]] {
        let mut cmd = dynrt(command);
        cmd.env("DYN_DISCOVERY_BACKEND", "mem");
        let out = run(cmd, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("DYN_DISCOVERY_BACKEND=mem") && stderr.contains("file"),
            "{stderr}"
        );
    }
}

/// `dynrt ls` and `dynrt call` reach a worker that speaks only Dynamo's protocol and whose
/// namespace (`Parent.child`) dynrt would not create: ls shows its protocol and codec, call
/// prints each item's data (a text item as plain text).
#[test]
fn ls_and_call_reach_a_dynamo_only_worker() {
    use dynrt_tokio::TokioRuntime;
    use dynrt_tokio::core::discovery::{DiscoveryRecord, EndpointRecord, Transport};
    use dynrt_tokio::core::names::{EndpointId, InstanceId, TcpRoute, TcpTransport};
    use dynrt_tokio::io::discovery::{FileStore, KvBackend};
    use dynrt_tokio::io::mux::{Handlers, MuxServer, ServerConfig, handler_fn};

    let tokio_rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, _store) = tokio_rt.block_on(async {
        let rt = TokioRuntime::current();
        let endpoint = EndpointId::from_peer("Parent.child", "backend", "generate").unwrap();
        let instance = InstanceId(0x7b);
        let route = TcpRoute::new(instance, endpoint.clone());
        let handlers = Handlers::new();
        handlers.insert(
            route.to_string(),
            handler_fn(|_payload, _ctx| {
                futures_lite::stream::iter([
                    Ok(bytes::Bytes::from_static(b"hello")),
                    Ok(bytes::Bytes::from_static(br#"{"k":1}"#)),
                ])
            }),
        );
        let server = MuxServer::bind(
            &rt,
            "127.0.0.1:0".parse().unwrap(),
            handlers,
            ServerConfig::default(),
        )
        .await
        .expect("server binds");
        let store = FileStore::open(&rt, dir.path()).expect("file store");
        let record = DiscoveryRecord::Endpoint(EndpointRecord::new(
            &endpoint,
            instance,
            Transport::Tcp(TcpTransport::new(server.local_addr(), &route).to_string()),
        ));
        store
            .create(record.key(), record.to_json().into())
            .await
            .expect("record written");
        (server, store)
    });

    let mut ls = dynrt(&["ls"]);
    file_backend(&mut ls, dir.path());
    let out = run(ls, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let row = stdout
        .lines()
        .find(|l| l.contains("7b"))
        .unwrap_or_else(|| panic!("ls does not show the Dynamo worker:\n{stdout}"));
    assert!(row.ends_with("dynamo tcp (json)"), "{row}");

    let mut call = dynrt(&["call", "dyn://Parent.child.backend.generate", "{}"]);
    file_backend(&mut call, dir.path());
    let out = run(call, LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "hello\n{\"k\":1}\n");
    assert_no_panic(&stderr);
}
