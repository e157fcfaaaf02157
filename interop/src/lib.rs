//! # dynrt-interop
//!
//! Live interop between dynrt and the real `dynamo-runtime` 1.6.1, both directions, as
//! separate processes sharing a discovery backend (a file-store directory or a real etcd).
//!
//! Four programs, two per side, behave the same so a test can swap either end:
//! - `dynamo-worker` / `dynrt-worker <ns> <component> <endpoint>` serve the interop handler;
//! - `dynamo-caller` / `dynrt-caller <ns> <component> <endpoint> <request JSON> [--after K
//!   --action stop|kill|drop]` call it and print what they get.
//!
//! The handler takes a JSON request ([`Op`]) and answers with JSON items:
//! `{"op":"echo","msg":M}` → one item `{"echo":M}`; `{"op":"stream","n":N,"delay_ms":D}` →
//! `{"i":0}` … `{"i":N-1}`, D ms apart; `{"op":"fail_prologue"}` → fails before any item;
//! `{"op":"fail_after","n":K}` → K items then an error item; `{"op":"size","blob":S}` →
//! `{"len": len(S)}` (the 1 MiB request).
//!
//! Both sides print one event per line on stdout (see [`harness::Line`]), which the tests in
//! `tests/` read with timeouts.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

pub mod harness;

/// The error text of `fail_prologue`.
pub const PROLOGUE_ERROR: &str = "interop: prologue failure requested";
/// The error text of `fail_after`.
pub const MID_STREAM_ERROR: &str = "interop: mid-stream failure requested";

/// Largest stream a request may ask for (bounds what a worker builds up front).
const MAX_ITEMS: u64 = 1_000_000;

/// A request to the interop handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// One item echoing `msg`.
    Echo(Value),
    /// `n` items, `delay_ms` apart.
    Stream { n: u64, delay_ms: u64 },
    /// An error before the first item.
    FailPrologue,
    /// `n` items, then an error.
    FailAfter { n: u64 },
    /// One item: the length of `blob`.
    Size { len: usize },
}

/// One item the handler produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A data item.
    Item(Value),
    /// An error item (ends the stream).
    Error(String),
}

impl Op {
    /// Reads a request; the error names what is wrong.
    pub fn parse(request: &Value) -> Result<Self, String> {
        let op = request
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("interop: request without a string \"op\": {request}"))?;
        let n = || request.get("n").and_then(Value::as_u64).unwrap_or(1);
        Ok(match op {
            "echo" => Self::Echo(request.get("msg").cloned().unwrap_or(Value::Null)),
            "stream" => Self::Stream {
                n: n(),
                delay_ms: request.get("delay_ms").and_then(Value::as_u64).unwrap_or(0),
            },
            "fail_prologue" => Self::FailPrologue,
            "fail_after" => Self::FailAfter { n: n() },
            "size" => Self::Size {
                len: request
                    .get("blob")
                    .and_then(Value::as_str)
                    .map(str::len)
                    .ok_or("interop: size request without a string \"blob\"")?,
            },
            other => return Err(format!("interop: unknown op {other:?}")),
        })
    }

    /// The op's name, for events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Echo(_) => "echo",
            Self::Stream { .. } => "stream",
            Self::FailPrologue => "fail_prologue",
            Self::FailAfter { .. } => "fail_after",
            Self::Size { .. } => "size",
        }
    }

    /// The pause between two items.
    pub fn delay(&self) -> Duration {
        match self {
            Self::Stream { delay_ms, .. } => Duration::from_millis(*delay_ms),
            _ => Duration::ZERO,
        }
    }

    /// What the handler answers, or the prologue error.
    pub fn replies(&self) -> Result<Vec<Reply>, String> {
        let items = |n: u64| -> Result<Vec<Reply>, String> {
            if n > MAX_ITEMS {
                return Err(format!("interop: {n} items is above {MAX_ITEMS}"));
            }
            Ok((0..n).map(|i| Reply::Item(json!({ "i": i }))).collect())
        };
        match self {
            Self::Echo(msg) => Ok(vec![Reply::Item(json!({ "echo": msg }))]),
            Self::Stream { n, .. } => items(*n),
            Self::FailPrologue => Err(PROLOGUE_ERROR.to_owned()),
            Self::FailAfter { n } => {
                let mut replies = items(*n)?;
                replies.push(Reply::Error(MID_STREAM_ERROR.to_owned()));
                Ok(replies)
            }
            Self::Size { len } => Ok(vec![Reply::Item(json!({ "len": len }))]),
        }
    }
}

/// Prints one event line on stdout and flushes it (the harness reads it at once).
pub fn event(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `<ns> <component> <endpoint>` from argv.
pub fn endpoint_args() -> anyhow::Result<[String; 3]> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match <[String; 3]>::try_from(args.get(..3).unwrap_or_default().to_vec()) {
        Ok(names) => Ok(names),
        Err(_) => anyhow::bail!("usage: <ns> <component> <endpoint>"),
    }
}

/// What a caller does after K items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask the worker to stop (finish gracefully) and read on.
    Stop,
    /// Kill the request and read on.
    Kill,
    /// Drop the response stream, wait, exit.
    Drop,
}

/// A caller's arguments.
#[derive(Debug, Clone)]
pub struct CallArgs {
    /// Namespace, component, endpoint.
    pub names: [String; 3],
    /// The request, JSON text.
    pub request: String,
    /// Act after this many items.
    pub after: Option<(u64, Action)>,
    /// Only list the instances discovery shows, then exit.
    pub list: bool,
}

impl CallArgs {
    /// Parses argv: `<ns> <component> <endpoint> (<request JSON> [--after K --action A] |
    /// --list)`.
    pub fn from_env() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "usage: <ns> <component> <endpoint> (<request JSON> [--after K --action \
                     stop|kill|drop] | --list)";
        if args.len() < 4 {
            anyhow::bail!("{usage}");
        }
        let names = [args[0].clone(), args[1].clone(), args[2].clone()];
        if args[3] == "--list" {
            return Ok(Self {
                names,
                request: String::new(),
                list: true,
                after: None,
            });
        }
        let mut after = None;
        let mut action = None;
        let mut rest = args[4..].iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value; {usage}"))?;
            match flag.as_str() {
                "--after" => after = Some(value.parse::<u64>()?),
                "--action" => {
                    action = Some(match value.as_str() {
                        "stop" => Action::Stop,
                        "kill" => Action::Kill,
                        "drop" => Action::Drop,
                        other => anyhow::bail!("unknown action {other:?}; {usage}"),
                    })
                }
                other => anyhow::bail!("unknown flag {other:?}; {usage}"),
            }
        }
        let after = match (after, action) {
            (Some(k), Some(a)) => Some((k, a)),
            (None, None) => None,
            _ => anyhow::bail!("--after and --action go together; {usage}"),
        };
        Ok(Self {
            names,
            request: args[3].clone(),
            after,
            list: false,
        })
    }
}

/// How long a caller waits for an instance to appear in discovery.
pub const DISCOVERY_WAIT: Duration = Duration::from_secs(30);
/// How long a caller reads before giving up (every test stream is shorter).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a caller that stopped, killed or dropped its stream stays alive before exiting.
pub const LINGER: Duration = Duration::from_secs(2);

/// A caller's request argument: JSON text, or `@path` to read it from a file (a 1 MiB request
/// does not fit in one argv string).
pub fn read_request(arg: &str) -> anyhow::Result<Vec<u8>> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path)?,
        None => arg.as_bytes().to_vec(),
    };
    // Refuse what is not JSON here, as `dynrt call` does, rather than at the worker.
    serde_json::from_slice::<Value>(&text)?;
    Ok(text)
}
