//! The `dynrt` tool on the NATS request plane (`DYN_REQUEST_PLANE=nats`) against a real
//! nats-server: `serve` prints its subject, `ls` lists it, `call` is answered, and after
//! kill -9 of one worker (its record kept fresh, as an unexpired lease would) every call is
//! answered by the other — the dead one's subject has no responders, so it is skipped.
//! Every wait is bounded; every child is killed on drop.
#![cfg(feature = "nats")]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dynrt_testkit::NatsServer;

const LIMIT: Duration = Duration::from_secs(60);

/// `dynrt` on the NATS plane at `nats`, with the file backend in `dir`, and no other dynrt
/// setting inherited from the test's environment.
fn dynrt(args: &[&str], dir: &Path, nats: &str) -> Command {
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
        .env("DYN_FILE_KV", dir)
        .env("DYN_REQUEST_PLANE", "nats")
        .env("NATS_SERVER", nats);
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

/// Runs `cmd` to completion, killing it after `limit`.
fn run(mut cmd: Command) -> Output {
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
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "dynrt {cmd:?} still running");
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

/// A `dynrt serve` process: its instance id and the subject it printed.
struct Worker {
    child: Running,
    instance: String,
    subject: String,
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
        let line_with = |what: &str| {
            let deadline = Instant::now() + LIMIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) if line.contains(what) => return line,
                    Ok(_) => {}
                    Err(e) => panic!("dynrt serve printed no line with '{what}': {e}"),
                }
            }
        };
        let instance = line_with("instance");
        let instance = instance
            .split_whitespace()
            .last()
            .expect("an id")
            .to_owned();
        let subject = line_with("subject");
        let subject = subject
            .split_whitespace()
            .nth(1)
            .expect("a subject")
            .to_owned();
        Self {
            child,
            instance,
            subject,
        }
    }
}

/// The instance a successful `dynrt call` says served it.
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

/// The files under `dir` whose name ends with `instance` (the file store's record of it).
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

#[test]
fn serve_ls_and_call_on_the_nats_plane_and_a_killed_worker_is_skipped() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = nats.url();
    let start = || Worker::start(dynrt(&["serve"], dir.path(), &url));
    let (first, second) = (start(), start());
    for worker in [&first, &second] {
        assert_eq!(
            worker.subject,
            format!("demo_backend.generate-{}", worker.instance),
            "Dynamo's subject form"
        );
    }
    let deadline = Instant::now() + LIMIT;
    while [&first, &second]
        .iter()
        .any(|w| record_files(dir.path(), &w.instance).is_empty())
    {
        assert!(Instant::now() < deadline, "records not written");
        std::thread::sleep(Duration::from_millis(20));
    }

    let listed = run(dynrt(&["ls"], dir.path(), &url));
    let listing = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    for worker in [&first, &second] {
        assert!(
            listing.contains(&format!("nats:{}", worker.subject)),
            "{listing}"
        );
    }
    assert!(listing.contains("dynamo nats (json)"), "{listing}");

    let call = || {
        run(dynrt(
            &[
                "call",
                "dyn://demo.backend.generate",
                r#"{"prompt":"hi there","max_tokens":3}"#,
            ],
            dir.path(),
            &url,
        ))
    };
    let out = call();
    assert_eq!(
        text(&out.stdout),
        "hi\nthere\nhi\n",
        "{}",
        text(&out.stderr)
    );
    let served = served_by(&out);
    assert!(
        served == first.instance || served == second.instance,
        "{served}"
    );

    // kill -9 one worker; keep its record fresh as an unexpired lease would.
    let (mut dead, alive) = (first, second);
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
    for n in 0..6 {
        let out = call();
        assert_eq!(
            text(&out.stdout),
            "hi\nthere\nhi\n",
            "call {n}: {}",
            text(&out.stderr)
        );
        assert_eq!(served_by(&out), alive.instance, "call {n}");
    }
    // A direct call to the dead one is a typed one-line error, exit 1.
    let out = run(dynrt(
        &[
            "call",
            "dyn://demo.backend.generate",
            "{}",
            "--instance",
            &dead.instance,
        ],
        dir.path(),
        &url,
    ));
    let stderr = text(&out.stderr);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    keeper.join().expect("keeper");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no responders"), "{stderr}");
    drop(alive);
}
