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

/// `dynrt` with no dynrt setting (nor log filter) inherited from the test's environment.
fn dynrt(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynrt"));
    for (key, _) in std::env::vars_os() {
        if ["DYN_", "ETCD_", "NATS_"]
            .iter()
            .any(|p| key.as_encoded_bytes().starts_with(p.as_bytes()))
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).env("NO_COLOR", "1").env_remove("RUST_LOG");
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
    fn start(cmd: Command) -> Self {
        Self::spawn(cmd, Stdio::inherit())
    }

    /// Like `start`, with the worker's stderr (its log) as lines on a channel, echoed to the
    /// test's stderr.
    fn start_logged(cmd: Command) -> (Self, mpsc::Receiver<String>) {
        let mut worker = Self::spawn(cmd, Stdio::piped());
        let stderr = worker.child.0.stderr.take().expect("piped");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[dynrt serve] {line}");
                let _ = tx.send(line);
            }
        });
        (worker, log)
    }

    fn spawn(mut cmd: Command, stderr: Stdio) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
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

/// `ls` shows the worker at `advertised` (an IP address), `call` streams its tokens (round
/// robin and direct), invalid JSON is refused before anything is sent, and SIGTERM drains it
/// cleanly.
fn serve_ls_call(advertised: &str, configure: impl Fn(&mut Command)) {
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
        row.contains(&format!(" {advertised}:")) && row.ends_with("mux v1"),
        "expected {advertised}: {row}"
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
    // A file store is read on this machine only: loopback.
    serve_ls_call("127.0.0.1", |cmd| {
        file_backend(cmd, dir.path());
    });
}

#[cfg(feature = "etcd")]
#[test]
fn serve_then_ls_and_call_through_etcd() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    // Other hosts read etcd's records: the worker advertises this host's routed address, as
    // Dynamo 1.6.1 does (loopback only on a machine without a route).
    let routed = dynrt_io::distributed::routed_addrs();
    let advertised = routed
        .v4
        .map(|ip| ip.to_string())
        .or(routed.v6.map(|ip| format!("[{ip}]")))
        .unwrap_or_else(|| "127.0.0.1".into());
    // etcd's default event plane is NATS, so every process opens a NATS client (the
    // specification's client rule): a real server for them.
    let nats = dynrt_testkit::NatsServer::start();
    serve_ls_call(&advertised, |cmd| {
        cmd.env("DYN_DISCOVERY_BACKEND", "etcd")
            .env("ETCD_ENDPOINTS", &endpoint)
            .env("NATS_SERVER", nats.url());
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

/// While etcd does not answer, the log says so (a warning naming the endpoint, once, not once
/// per retry); when the tool gives up, one line names it and the alternatives.
#[cfg(feature = "etcd")]
#[test]
fn unreachable_etcd_warns_while_retrying_then_is_one_line_naming_it_and_the_alternatives() {
    let mut ls = dynrt(&["ls"]);
    ls.env("DYN_DISCOVERY_BACKEND", "etcd")
        .env("ETCD_ENDPOINTS", "http://127.0.0.1:1");
    let out = run(ls, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let warnings: Vec<&&str> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("etcd unreachable") && warnings[0].contains("http://127.0.0.1:1"),
        "{stderr}"
    );
    let last = lines.last().expect("an error line");
    assert!(last.starts_with("dynrt: "), "{stderr}");
    for needle in ["http://127.0.0.1:1", "DYN_DISCOVERY_BACKEND=file", "mem"] {
        assert!(last.contains(needle), "'{needle}' missing: {stderr}");
    }
    assert_no_panic(&stderr);
    assert!(out.stdout.is_empty());
}

/// A worker whose etcd goes away logs it, then logs the lease loss, then stops.
#[cfg(feature = "etcd")]
#[test]
fn a_worker_logs_etcd_going_away_and_the_lost_lease() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let mut serve = dynrt(&["serve"]);
    serve
        .env("DYN_DISCOVERY_BACKEND", "etcd")
        .env("ETCD_ENDPOINTS", &endpoint)
        // No NATS here: zmq events, so no NATS client is opened.
        .env("DYN_EVENT_PLANE", "zmq")
        .env("ETCD_LEASE_TTL", "3");
    let (mut worker, log) = Worker::start_logged(serve);
    etcd.stop();
    let next_warning = |what: &str| {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) if line.contains(" WARN ") && line.contains(what) => return line,
                Ok(_) => {}
                Err(e) => panic!("no warning with '{what}' in the worker's log: {e}"),
            }
        }
    };
    // In this order: the keep-alive fails, then the lease deadline passes.
    let unreachable = next_warning("etcd unreachable");
    assert!(unreachable.contains(&endpoint), "{unreachable}");
    let lost = next_warning("etcd lease lost");
    assert!(lost.contains(&endpoint), "{lost}");
    // And the worker stops (its exit code is the drain's business).
    let deadline = Instant::now() + LIMIT;
    while worker.child.0.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "dynrt serve still running after losing its lease"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Any variable may hold bytes that are not UTF-8; reading the environment used to panic
/// (exit 101) on one, whoever it belonged to. Someone else's is ignored; one of ours is an
/// error naming it.
#[test]
fn a_non_utf8_environment_does_not_panic_and_a_bad_value_of_ours_is_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let bad = OsStr::from_bytes(b"caf\xe9");
    let dir = tempfile::tempdir().expect("temp dir");
    let other = |args: &[&str]| {
        let mut cmd = dynrt(args);
        file_backend(&mut cmd, dir.path());
        cmd.env("SOME_OTHER_VARIABLE", bad);
        cmd
    };
    // A worker starts and serves; ls lists it; call gets its answer.
    let worker = Worker::start(other(&["serve"]));
    let out = run(other(&["ls"]), LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_no_panic(&stderr);
    assert!(text(&out.stdout).contains(&worker.instance));
    let out = run(
        other(&[
            "call",
            "dyn://demo.backend.generate",
            r#"{"prompt":"ok","max_tokens":1}"#,
        ]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(text(&out.stdout), "ok\n");
    worker.terminate();

    for command in [
        &["serve"][..],
        &["ls"][..],
        &["call", "dyn://a.b.c", "{}"][..],
    ] {
        let mut cmd = dynrt(command);
        cmd.env("DYN_DISCOVERY_BACKEND", "file")
            .env("DYN_FILE_KV", bad);
        let out = run(cmd, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("DYN_FILE_KV: 'caf\u{FFFD}' is not valid UTF-8"),
            "{command:?}: {stderr}"
        );
        assert_no_panic(&stderr);
    }
}

/// A limit below what the handshake needs used to be accepted, and then every call failed.
#[test]
fn a_max_message_size_too_small_for_a_handshake_is_refused_at_start() {
    for command in [&["serve"][..], &["ls"][..]] {
        let mut cmd = dynrt(command);
        cmd.env("DYN_DISCOVERY_BACKEND", "file")
            .env("DYN_TCP_MAX_MESSAGE_SIZE", "100");
        let out = run(cmd, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("DYN_TCP_MAX_MESSAGE_SIZE: '100' is below the minimum of 16384 bytes"),
            "{command:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
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

/// The limit settings are read by the tool too: zero, nonsense or a value below the minimum
/// is one line naming the variable and the value, exit 2, before anything starts.
#[test]
fn a_bad_limit_setting_is_a_one_line_error_naming_it() {
    let cases = [
        (
            "DYN_TCP_MAX_CONNECTIONS",
            "0",
            "DYN_TCP_MAX_CONNECTIONS: '0' must be at least 1",
        ),
        (
            "DYN_TCP_STALL_TIMEOUT",
            "30s",
            "DYN_TCP_STALL_TIMEOUT: '30s' is not a whole number of seconds",
        ),
        (
            "DYN_SYSTEM_MAX_HEADER_BYTES",
            "100",
            "DYN_SYSTEM_MAX_HEADER_BYTES: '100' is below the minimum of 1024 bytes",
        ),
        (
            "DYN_REQUEST_MAX_ATTEMPTS",
            "-1",
            "DYN_REQUEST_MAX_ATTEMPTS: '-1' is not a whole number",
        ),
    ];
    for (var, value, says) in cases {
        for command in [&["serve"][..], &["ls"][..]] {
            let mut cmd = dynrt(command);
            cmd.env("DYN_DISCOVERY_BACKEND", "file").env(var, value);
            let out = run(cmd, LIMIT);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command:?} {var}: {stderr}");
            assert!(stderr.contains(says), "{command:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
            assert_no_panic(&stderr);
        }
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

/// The instance a successful `dynrt call` says served it (`(3 items in … ms from instance 1a2b)`).
fn served_by(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    stderr
        .split("from instance ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no 'from instance' in: {stderr}"))
        .to_owned()
}

/// The files under `dir` whose name holds `instance` (the file store's record of it).
fn record_files(dir: &Path, instance: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(instance))
            {
                found.push(path);
            }
        }
    }
    found
}

/// Issue 9 item 5: separate `dynrt call` processes spread over two workers (each process's
/// round robin starts at a random instance), and after kill -9 of one worker every call still
/// succeeds: the refused connect is retried on the other while the dead worker's record is
/// still in discovery.
#[test]
fn call_processes_spread_over_workers_and_retry_past_a_killed_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let start = || {
        let mut serve = dynrt(&["serve"]);
        file_backend(&mut serve, dir.path());
        Worker::start(serve)
    };
    let (first, second) = (start(), start());
    let call = || {
        let mut call = dynrt(&[
            "call",
            "dyn://demo.backend.generate",
            r#"{"prompt":"hi","max_tokens":2}"#,
        ]);
        file_backend(&mut call, dir.path());
        run(call, LIMIT)
    };
    // Both records are visible before the first call.
    let deadline = Instant::now() + LIMIT;
    while [&first, &second]
        .iter()
        .any(|w| record_files(dir.path(), &w.instance).is_empty())
    {
        assert!(Instant::now() < deadline, "records not written");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut served = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        *served.entry(served_by(&call())).or_default() += 1;
    }
    for worker in [&first, &second] {
        assert!(
            served.get(&worker.instance).is_some_and(|&n| n > 0),
            "worker {} served none of 20 calls: {served:?}",
            worker.instance
        );
    }

    // Kill the worker with the lower id (the one every process used to call first), and keep
    // its record fresh as a lease that has not expired yet would be.
    let id = |w: &Worker| u64::from_str_radix(&w.instance, 16).expect("hex id");
    let (mut dead, alive) = if id(&first) < id(&second) {
        (first, second)
    } else {
        (second, first)
    };
    dead.child.0.kill().expect("kill -9");
    dead.child.0.wait().expect("reaped");
    let records = record_files(dir.path(), &dead.instance);
    assert!(
        !records.is_empty(),
        "the dead worker's record is gone early"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for path in &records {
                    let file = std::fs::File::options().write(true).open(path);
                    let _ = file.and_then(|f| f.set_modified(std::time::SystemTime::now()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    for n in 0..10 {
        let out = call();
        assert_eq!(
            text(&out.stdout),
            "hi\nhi\n",
            "call {n}: {}",
            text(&out.stderr)
        );
        assert_eq!(served_by(&out), alive.instance, "call {n}");
    }
    // The dead worker is still listed: the calls succeeded by retrying, not because it was
    // gone from discovery.
    let mut ls = dynrt(&["ls"]);
    file_backend(&mut ls, dir.path());
    let listed = text(&run(ls, LIMIT).stdout);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    keeper.join().expect("keeper");
    assert!(listed.contains(&dead.instance), "{listed}");
    drop(alive);
}

/// `GET path` on `127.0.0.1:port` with `Connection: close`: the status code and body, or `None`
/// when nothing answers (yet). Every step is bounded.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: dynrt.test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply = text(&reply);
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// `dynrt serve` with the status server on: `/live` is 200 and `/health` turns 200 with the
/// endpoint listed ready — with canaries off (registration makes it ready) and on (a canary
/// the worker sends itself does).
#[test]
fn serve_reports_ready_on_health_once_its_endpoint_serves() {
    for canaries in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut serve = dynrt(&["serve"]);
        file_backend(&mut serve, dir.path());
        serve.env("DYN_SYSTEM_PORT", port.to_string());
        if canaries {
            serve.env("DYN_HEALTH_CHECK_ENABLED", "true");
        }
        let worker = Worker::start(serve);
        let live = http_get(port, "/live");
        assert_eq!(live.as_ref().map(|r| r.0), Some(200), "{live:?}");
        let deadline = Instant::now() + LIMIT;
        let health = loop {
            let health = http_get(port, "/health");
            if health.as_ref().is_some_and(|(status, _)| *status == 200) {
                break health.expect("answered");
            }
            assert!(
                Instant::now() < deadline,
                "canaries {canaries}: /health never turned 200; last answer {health:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let body: serde_json::Value = serde_json::from_str(&health.1).expect("JSON body");
        assert_eq!(body["status"], "ready", "{body}");
        assert_eq!(body["endpoints"]["generate"], "ready", "{body}");
        let report = worker.terminate();
        assert!(report.contains("shutdown: clean"), "{report}");
    }
}

/// Settings dynrt parses but does not implement are not ignored silently: each is a warning
/// naming it when the runtime starts; an invalid event plane warns and falls back. (Both event
/// planes are implemented now; the codec setting 1.6.1 ignores is the one that has no effect.)
#[test]
fn settings_without_effect_are_warnings_naming_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nats = dynrt_testkit::NatsServer::start();
    for (var, value, says) in [
        ("DYN_EVENT_PLANE_CODEC", "json", "has no effect"),
        (
            "DYN_EVENT_PLANE",
            "kafka",
            "using the default, zmq (for file)",
        ),
    ] {
        let mut ls = dynrt(&["ls"]);
        file_backend(&mut ls, dir.path());
        ls.env(var, value).env("NATS_SERVER", nats.url());
        let out = run(ls, LIMIT);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let warning = stderr
            .lines()
            .find(|l| l.contains(" WARN ") && l.contains(&format!("{var}: '{value}'")))
            .unwrap_or_else(|| panic!("no warning naming {var}: {stderr}"));
        assert!(warning.contains(says), "{warning}");
    }
}

/// A tool whose configuration needs NATS and cannot reach it stops with one line naming the
/// server and the setting that bounds the retry (exit 2), not a hang.
#[test]
fn unreachable_nats_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = format!("nats://127.0.0.1:{}", dynrt_testkit::free_port());
    let mut ls = dynrt(&["ls"]);
    file_backend(&mut ls, dir.path());
    ls.env("NATS_SERVER", &dead)
        .env("NATS_STARTUP_CONNECT_TIMEOUT_SECONDS", "1");
    let out = run(ls, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.trim_end().lines().last().expect("an error line");
    assert!(last.starts_with("dynrt: "), "{stderr}");
    for needle in [dead.as_str(), "NATS_STARTUP_CONNECT_TIMEOUT_SECONDS"] {
        assert!(last.contains(needle), "'{needle}' missing: {stderr}");
    }
    assert_no_panic(&stderr);
}

/// A connection that dies with a request on it is a warning in the log (it used to say
/// nothing): a caller whose worker is killed mid-stream logs it.
#[test]
fn a_connection_that_dies_mid_request_is_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = dynrt(&["serve"]);
    file_backend(&mut serve, dir.path());
    let mut worker = Worker::start(serve);

    // The caller prints one item, then blocks on its stdout (nobody reads it), so its stream
    // stays open; its connection keeps being driven.
    let mut call = dynrt(&[
        "call",
        "dyn://demo.backend.generate",
        r#"{"prompt":"a b","max_tokens":1048576}"#,
    ]);
    file_backend(&mut call, dir.path());
    call.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut caller = Running(call.spawn().expect("dynrt call starts"));
    let stderr = caller.0.stderr.take().expect("piped");
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[dynrt call] {line}");
            let _ = tx.send(line);
        }
    });
    let mut first = String::new();
    BufReader::new(caller.0.stdout.as_mut().expect("piped"))
        .read_line(&mut first)
        .expect("one item");
    assert_eq!(first, "a\n");
    worker.child.0.kill().expect("kill -9 the worker");

    let deadline = Instant::now() + LIMIT;
    let died = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(" WARN ") && line.contains("mux connection died") => {
                break line;
            }
            Ok(_) => {}
            Err(e) => panic!("the caller logged no dead connection: {e}"),
        }
    };
    assert!(died.contains("cut_streams=1"), "{died}");
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
