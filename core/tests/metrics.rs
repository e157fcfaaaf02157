//! The metrics registry: names, labels, sanitisation, collisions, recording, and an exposition
//! that parses (strict grammar check below, plus the `prometheus-parse` crate).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dynrt_core::metrics::prometheus_names::{
    SanitizeError, is_valid_label_name, sanitize_label, sanitize_metric_name, work_handler,
};
use dynrt_core::metrics::{CONTENT_TYPE, ErrorType, MetricsError, MetricsRegistry, Scope};

// ---------------------------------------------------------------------------------------------
// A strict checker of the Prometheus text format 0.0.4.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The format's label-name grammar (independent of the crate's own check).
fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let ok = !digits.is_empty()
                && digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                && digits.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(format!("'{s}' is not a sample value"));
            }
            s.parse::<f64>().map_err(|e| format!("'{s}': {e}"))
        }
    }
}

fn unescape(s: &str, quote: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if quote => out.push('"'),
                other => return Err(format!("bad escape \\{other:?} in '{s}'")),
            },
            '"' if quote => return Err(format!("unescaped quote in '{s}'")),
            '\n' => return Err("raw newline".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parses `{a="x",b="y"}` (the braces included); returns labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').expect("caller checked");
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name '{name}'"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        // Find the closing quote, skipping escapes.
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err("unterminated label value".into());
        }
        let value = unescape(&rest[..i], true)?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label '{name}' twice"));
        }
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' at '{rest}'"));
        }
    }
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base;
        }
    }
    name
}

fn check_exposition(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut done_families: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen_series: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        let family = if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text".into()))?;
            if !is_metric_name(name) {
                return Err(err("bad metric name".into()));
            }
            let help = unescape(help, false).map_err(err)?;
            if exp.helps.insert(name.to_owned(), help).is_some() {
                return Err(err("second HELP".into()));
            }
            name.to_owned()
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type".into()))?;
            if !is_metric_name(name) {
                return Err(err("bad metric name".into()));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                return Err(err(format!("unknown type '{ty}'")));
            }
            if exp
                .samples
                .iter()
                .any(|s| family_of(&s.name, &exp.types) == name)
            {
                return Err(err("TYPE after samples".into()));
            }
            if exp.types.insert(name.to_owned(), ty.to_owned()).is_some() {
                return Err(err("second TYPE".into()));
            }
            name.to_owned()
        } else if line.starts_with('#') {
            continue;
        } else {
            let end = line
                .find(['{', ' '])
                .ok_or_else(|| err("no value".into()))?;
            let name = &line[..end];
            if !is_metric_name(name) {
                return Err(err("bad metric name".into()));
            }
            let (labels, rest) = if line[end..].starts_with('{') {
                parse_labels(&line[end..]).map_err(err)?
            } else {
                (BTreeMap::new(), &line[end..])
            };
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value".into()))?;
            if value.contains(' ') {
                return Err(err("trailing fields (timestamps are not emitted)".into()));
            }
            let value = parse_value(value).map_err(err)?;
            if !seen_series.insert((name.to_owned(), labels.clone())) {
                return Err(err("duplicate series".into()));
            }
            let fam = family_of(name, &exp.types).to_owned();
            exp.samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
            fam
        };
        if current.as_deref() != Some(family.as_str()) {
            if done_families.contains(&family) {
                return Err(err(format!("family '{family}' is split")));
            }
            if let Some(prev) = current.replace(family.clone()) {
                done_families.insert(prev);
            }
        }
    }
    check_histograms(&exp)?;
    Ok(exp)
}

fn check_histograms(exp: &Exposition) -> Result<(), String> {
    for (family, _) in exp.types.iter().filter(|(_, t)| *t == "histogram") {
        // Group buckets by their labels without `le`.
        let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in exp
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = s.labels.clone();
            let le = labels
                .remove("le")
                .ok_or(format!("{family}: bucket without le"))?;
            let le = parse_value(&le)?;
            groups.entry(labels).or_default().push((le, s.value));
        }
        for (labels, buckets) in groups {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for w in buckets.windows(2) {
                if w[0].0 >= w[1].0 || w[0].1 > w[1].1 {
                    return Err(format!(
                        "{family}: buckets not increasing/cumulative: {buckets:?}"
                    ));
                }
            }
            let last = buckets.last().expect("a group has a bucket");
            if last.0 != f64::INFINITY {
                return Err(format!("{family}: no +Inf bucket"));
            }
            let count = exp
                .value(&format!("{family}_count"), &pairs)
                .ok_or(format!("{family}: no _count"))?;
            exp.value(&format!("{family}_sum"), &pairs)
                .ok_or(format!("{family}: no _sum"))?;
            if count != last.1 {
                return Err(format!("{family}: +Inf bucket {} != count {count}", last.1));
            }
        }
    }
    Ok(())
}

/// Both parsers must accept the text; returns the strict parse.
fn parse(text: &str) -> Exposition {
    let exp = check_exposition(text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"));
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse reads it");
    // prometheus-parse folds each histogram into one sample; count what it saw.
    let plain = exp
        .samples
        .iter()
        .filter(|s| family_of(&s.name, &exp.types) == s.name)
        .count();
    let histogram_groups: BTreeSet<_> = exp
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
        .map(|s| {
            let mut l = s.labels.clone();
            l.remove("le");
            (s.name.clone(), l)
        })
        .collect();
    let folded_sum_count = exp.samples.len()
        - plain
        - exp
            .samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .count();
    assert_eq!(
        scrape.samples.len(),
        plain + histogram_groups.len() + folded_sum_count,
        "prometheus-parse saw a different number of samples"
    );
    exp
}

// ---------------------------------------------------------------------------------------------

const WORKER: u64 = 0x1a2b;

fn ep(reg: &mut MetricsRegistry) -> dynrt_core::metrics::EndpointMetrics {
    reg.endpoint("demo", "backend", "generate", &[]).unwrap()
}

#[test]
fn content_type_is_prometheus_text_0_0_4() {
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

#[test]
fn fresh_registry_exposes_uptime_refreshed_from_now() {
    let t0 = Instant::now();
    let reg = MetricsRegistry::new(t0, Some(WORKER));
    assert_eq!(
        reg.render(t0 + Duration::from_millis(12_500)),
        "# HELP dynamo_component_uptime_seconds Total uptime of the DistributedRuntime in seconds\n\
         # TYPE dynamo_component_uptime_seconds gauge\n\
         dynamo_component_uptime_seconds{worker_id=\"1a2b\"} 12.5\n"
    );
    let later = parse(&reg.render(t0 + Duration::from_secs(3600)));
    assert_eq!(
        later.value("dynamo_component_uptime_seconds", &[("worker_id", "1a2b")]),
        Some(3600.0)
    );
    // Without an instance id there is no worker_id label.
    let anon = MetricsRegistry::new(t0, None);
    assert!(
        anon.render(t0)
            .contains("\ndynamo_component_uptime_seconds 0\n")
    );
}

#[test]
fn endpoint_metrics_render_exactly_like_dynamo() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, Some(WORKER));
    let m = ep(&mut reg);
    let a = m.request_started(100, t0 + Duration::from_secs(1));
    m.response_bytes(30);
    a.finish(t0 + Duration::from_millis(1003));
    let b = m.request_started(50, t0 + Duration::from_secs(2));
    m.response_bytes(30);
    b.finish(t0 + Duration::from_millis(2200));
    let _pending = m.request_started(7, t0 + Duration::from_secs(3));
    m.error(ErrorType::Generate);
    m.cancelled();

    let l = r#"dynamo_component="backend",dynamo_endpoint="generate",dynamo_namespace="demo""#;
    let w = r#"worker_id="1a2b""#;
    let mut want = String::new();
    let mut fam = |name: &str, help: &str, ty: &str, lines: &[String]| {
        want += &format!(
            "# HELP dynamo_component_{name} {help}\n# TYPE dynamo_component_{name} {ty}\n"
        );
        for line in lines {
            want += line;
            want += "\n";
        }
    };
    fam(
        "cancellation_total",
        "Total number of requests cancelled by work handler",
        "counter",
        &[format!("dynamo_component_cancellation_total{{{l},{w}}} 1")],
    );
    fam(
        "errors_total",
        "Total number of errors in work handler processing",
        "counter",
        &[format!(
            "dynamo_component_errors_total{{{l},error_type=\"generate\",{w}}} 1"
        )],
    );
    fam(
        "inflight_requests",
        "Number of requests currently being processed by work handler",
        "gauge",
        &[format!("dynamo_component_inflight_requests{{{l},{w}}} 1")],
    );
    fam(
        "request_bytes_total",
        "Total number of bytes received in requests by work handler",
        "counter",
        &[format!(
            "dynamo_component_request_bytes_total{{{l},{w}}} 157"
        )],
    );
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "30",
        "60", "120", "300", "600", "+Inf",
    ];
    let mut hist: Vec<String> = les
        .iter()
        .map(|le| {
            let n = match *le {
                "0.005" | "0.01" | "0.025" | "0.05" | "0.1" => 1,
                _ => 2,
            };
            format!("dynamo_component_request_duration_seconds_bucket{{{l},{w},le=\"{le}\"}} {n}")
        })
        .collect();
    hist.push(format!(
        "dynamo_component_request_duration_seconds_sum{{{l},{w}}} 0.203"
    ));
    hist.push(format!(
        "dynamo_component_request_duration_seconds_count{{{l},{w}}} 2"
    ));
    fam(
        "request_duration_seconds",
        "Time spent processing requests by work handler",
        "histogram",
        &hist,
    );
    fam(
        "requests_total",
        "Total number of requests processed by work handler",
        "counter",
        &[format!("dynamo_component_requests_total{{{l},{w}}} 3")],
    );
    fam(
        "response_bytes_total",
        "Total number of bytes sent in responses by work handler",
        "counter",
        &[format!(
            "dynamo_component_response_bytes_total{{{l},{w}}} 60"
        )],
    );
    fam(
        "uptime_seconds",
        "Total uptime of the DistributedRuntime in seconds",
        "gauge",
        &[format!("dynamo_component_uptime_seconds{{{w}}} 4")],
    );
    let got = reg.render(t0 + Duration::from_secs(4));
    assert_eq!(got, want);
    parse(&got);
}

#[test]
fn recorded_series_carry_endpoint_labels_and_parse() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, Some(WORKER));
    let gen_ = ep(&mut reg);
    let emb = reg
        .endpoint("demo", "backend", "embed", &[("model", "tiny")])
        .unwrap();
    for i in 0..10u64 {
        let r = gen_.request_started(10, t0);
        gen_.response_bytes(5);
        r.finish(t0 + Duration::from_millis(i * 40));
    }
    emb.request_started(1, t0)
        .finish(t0 + Duration::from_secs(700));
    emb.error(ErrorType::Deserialization);
    emb.error(ErrorType::Deserialization);
    emb.error(ErrorType::PublishFinal);

    let exp = parse(&reg.render(t0));
    let gl = [
        ("dynamo_namespace", "demo"),
        ("dynamo_component", "backend"),
        ("dynamo_endpoint", "generate"),
        ("worker_id", "1a2b"),
    ];
    let el = [
        ("dynamo_namespace", "demo"),
        ("dynamo_component", "backend"),
        ("dynamo_endpoint", "embed"),
        ("model", "tiny"),
        ("worker_id", "1a2b"),
    ];
    assert_eq!(
        exp.value("dynamo_component_requests_total", &gl),
        Some(10.0)
    );
    assert_eq!(
        exp.value("dynamo_component_request_bytes_total", &gl),
        Some(100.0)
    );
    assert_eq!(
        exp.value("dynamo_component_response_bytes_total", &gl),
        Some(50.0)
    );
    assert_eq!(
        exp.value("dynamo_component_inflight_requests", &gl),
        Some(0.0)
    );
    assert_eq!(
        exp.value("dynamo_component_request_duration_seconds_count", &gl),
        Some(10.0)
    );
    let sum = exp
        .value("dynamo_component_request_duration_seconds_sum", &gl)
        .unwrap();
    assert!((sum - 1.8).abs() < 1e-9, "{sum}");
    let bucket = |le: &str, labels: &[(&str, &str)]| {
        let mut l = labels.to_vec();
        l.push(("le", le));
        exp.value("dynamo_component_request_duration_seconds_bucket", &l)
    };
    // 0, 40, 80, ..., 360 ms: 0.05 holds 0 and 40 ms; 0.1 adds 80 ms; 0.25 up to 240 ms.
    assert_eq!(bucket("0.05", &gl), Some(2.0));
    assert_eq!(bucket("0.1", &gl), Some(3.0));
    assert_eq!(bucket("0.25", &gl), Some(7.0));
    assert_eq!(bucket("0.5", &gl), Some(10.0));
    // 700 s is above the largest bound: only +Inf counts it.
    assert_eq!(bucket("600", &el), Some(0.0));
    assert_eq!(bucket("+Inf", &el), Some(1.0));
    let mut des = el.to_vec();
    des.push(("error_type", "deserialization"));
    assert_eq!(exp.value("dynamo_component_errors_total", &des), Some(2.0));
    let mut fin = el.to_vec();
    fin.push(("error_type", "publish_final"));
    assert_eq!(exp.value("dynamo_component_errors_total", &fin), Some(1.0));
    assert_eq!(
        exp.samples
            .iter()
            .filter(|s| s.name == "dynamo_component_errors_total")
            .count(),
        2,
        "only counted classes appear"
    );
    assert_eq!(
        exp.types["dynamo_component_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(exp.types["dynamo_component_inflight_requests"], "gauge");
    assert_eq!(exp.types["dynamo_component_errors_total"], "counter");
}

#[test]
fn families_without_samples_are_left_out() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let m = ep(&mut reg);
    let exp = parse(&reg.render(t0));
    assert!(!exp.names().contains("dynamo_component_errors_total"));
    assert!(!exp.helps.contains_key("dynamo_component_errors_total"));
    assert!(
        exp.names().contains("dynamo_component_requests_total"),
        "zero counters are shown"
    );
    m.error(ErrorType::ResponseStream);
    assert!(
        parse(&reg.render(t0))
            .names()
            .contains("dynamo_component_errors_total")
    );
}

#[test]
fn duration_bucket_bounds_are_inclusive() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let m = ep(&mut reg);
    m.request_started(0, t0)
        .finish(t0 + Duration::from_millis(5));
    m.request_started(0, t0)
        .finish(t0 + Duration::from_nanos(5_000_001));
    let exp = parse(&reg.render(t0));
    let l = |le| {
        vec![
            ("dynamo_namespace", "demo"),
            ("dynamo_component", "backend"),
            ("dynamo_endpoint", "generate"),
            ("le", le),
        ]
    };
    let b = "dynamo_component_request_duration_seconds_bucket";
    assert_eq!(exp.value(b, &l("0.005")), Some(1.0));
    assert_eq!(exp.value(b, &l("0.01")), Some(2.0));
    assert_eq!(work_handler::REQUEST_DURATION_BUCKETS.len(), 17);
}

/// The token-free recording the request plane uses keeps the same books as the token: in
/// flight from arrival to done or abandoned, a duration only when done.
#[test]
fn arrived_done_and_abandoned_keep_inflight_and_durations_without_a_token() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let m = ep(&mut reg);
    m.request_arrived(10);
    m.request_arrived(0);
    let token = m.request_started(5, t0);
    assert_eq!(m.inflight(), 3);
    assert_eq!(m.requests(), 3);
    m.request_done(t0, t0 + Duration::from_millis(2));
    assert_eq!(m.inflight(), 2);
    m.request_abandoned();
    assert_eq!(m.inflight(), 1);
    token.finish(t0 + Duration::from_millis(2));
    assert_eq!(m.inflight(), 0);
    let exp = parse(&reg.render(t0));
    let l = [
        ("dynamo_namespace", "demo"),
        ("dynamo_component", "backend"),
        ("dynamo_endpoint", "generate"),
    ];
    assert_eq!(
        exp.value("dynamo_component_request_duration_seconds_count", &l),
        Some(2.0),
        "two requests were done, one abandoned"
    );
    assert_eq!(
        exp.value("dynamo_component_request_bytes_total", &l),
        Some(15.0)
    );
    assert_eq!(
        exp.value("dynamo_component_inflight_requests", &l),
        Some(0.0)
    );
}

#[test]
fn inflight_token_dropped_without_finish_leaves_inflight_but_records_no_duration() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let m = ep(&mut reg);
    let a = m.request_started(1, t0);
    let b = m.request_started(1, t0);
    assert_eq!(m.inflight(), 2);
    assert_eq!(a.started(), t0);
    drop(a);
    assert_eq!(m.inflight(), 1);
    b.finish(t0 + Duration::from_secs(1));
    assert_eq!(m.inflight(), 0);
    assert_eq!(m.requests(), 2);
    let exp = parse(&reg.render(t0));
    let l = [
        ("dynamo_namespace", "demo"),
        ("dynamo_component", "backend"),
        ("dynamo_endpoint", "generate"),
    ];
    assert_eq!(
        exp.value("dynamo_component_request_duration_seconds_count", &l),
        Some(1.0)
    );
    assert_eq!(
        exp.value("dynamo_component_inflight_requests", &l),
        Some(0.0)
    );
}

#[test]
fn endpoint_registration_is_get_or_create() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let a = ep(&mut reg);
    let b = ep(&mut reg);
    a.cancelled();
    assert_eq!(b.cancellations(), 1, "same series");
    let c = reg
        .endpoint("demo", "backend", "generate", &[("lora", "x")])
        .unwrap();
    assert_eq!(c.cancellations(), 0, "other labels: another series");
    let exp = parse(&reg.render(t0));
    assert_eq!(
        exp.samples
            .iter()
            .filter(|s| s.name == "dynamo_component_cancellation_total")
            .count(),
        2
    );
}

#[test]
fn concurrent_recording_is_counted_exactly_and_histogram_stays_consistent() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let m = ep(&mut reg);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = m.clone();
            s.spawn(move || {
                for i in 0..10_000u64 {
                    let r = m.request_started(3, t0);
                    m.response_bytes(2);
                    if i % 100 == 0 {
                        m.error(ErrorType::PublishResponse);
                    }
                    r.finish(t0 + Duration::from_micros(t * 1000 + i));
                }
            });
        }
        // Render while recording: every scrape must be valid.
        for _ in 0..20 {
            parse(&reg.render(t0));
        }
    });
    assert_eq!(m.requests(), 40_000);
    assert_eq!(m.inflight(), 0);
    assert_eq!(m.errors(ErrorType::PublishResponse), 400);
    let exp = parse(&reg.render(t0));
    let l = [
        ("dynamo_namespace", "demo"),
        ("dynamo_component", "backend"),
        ("dynamo_endpoint", "generate"),
    ];
    assert_eq!(
        exp.value("dynamo_component_request_bytes_total", &l),
        Some(120_000.0)
    );
    assert_eq!(
        exp.value("dynamo_component_response_bytes_total", &l),
        Some(80_000.0)
    );
    assert_eq!(
        exp.value("dynamo_component_request_duration_seconds_count", &l),
        Some(40_000.0)
    );
}

#[test]
fn scope_labels_are_added_per_level_and_sanitised() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    reg.counter(&Scope::runtime(), "a_total", "a", &[])
        .unwrap()
        .inc();
    reg.counter(&Scope::namespace("my-ns").unwrap(), "b_total", "b", &[])
        .unwrap()
        .inc();
    reg.counter(
        &Scope::component("ns", "9lives").unwrap(),
        "c_total",
        "c",
        &[],
    )
    .unwrap()
    .inc();
    reg.counter(
        &Scope::endpoint("ns", "comp", "__gen.v2").unwrap(),
        "d_total",
        "d",
        &[],
    )
    .unwrap()
    .inc();
    let exp = parse(&reg.render(t0));
    assert_eq!(exp.value("dynamo_component_a_total", &[]), Some(1.0));
    assert_eq!(
        exp.value("dynamo_component_b_total", &[("dynamo_namespace", "my_ns")]),
        Some(1.0)
    );
    assert_eq!(
        exp.value(
            "dynamo_component_c_total",
            &[("dynamo_namespace", "ns"), ("dynamo_component", "_9lives")]
        ),
        Some(1.0)
    );
    assert_eq!(
        exp.value(
            "dynamo_component_d_total",
            &[
                ("dynamo_namespace", "ns"),
                ("dynamo_component", "comp"),
                ("dynamo_endpoint", "gen_v2")
            ]
        ),
        Some(1.0)
    );
    assert!(matches!(
        Scope::endpoint("ns", "comp", "@@"),
        Err(MetricsError::InvalidScope {
            level: "endpoint",
            ..
        })
    ));
    // An empty level adds no label (1.6.1 skips it).
    assert_eq!(Scope::namespace("").unwrap().labels(), vec![]);
}

#[test]
fn metric_names_are_sanitised_like_dynamo() {
    let cases = [
        ("valid_name", "valid_name"),
        ("test:name", "test:name"),
        ("test name", "test_name"),
        ("test.name", "test_name"),
        ("test-name", "test_name"),
        ("test$name#123", "test_name_123"),
        ("test__name", "test__name"),
        ("__test", "__test"),
        ("123test", "_123test"),
        ("@test", "_test"),
        (":test", "_:test"),
        ("123.test-name@domain", "_123_test_name_domain"),
        ("héllo", "h_llo"),
    ];
    for (raw, want) in cases {
        assert_eq!(sanitize_metric_name(raw).as_deref(), Ok(want), "{raw}");
    }
    assert_eq!(
        sanitize_metric_name(""),
        Err(SanitizeError::Empty {
            what: "metric name"
        })
    );
    for raw in ["@#$%", "!!!!", "_", "___"] {
        assert!(sanitize_metric_name(raw).is_err(), "{raw}");
    }
}

#[test]
fn labels_are_sanitised_like_dynamo() {
    let cases = [
        ("valid_label", "valid_label"),
        ("test:label", "test_label"),
        ("test label", "test_label"),
        ("test-label", "test_label"),
        ("test$label#123", "test_label_123"),
        ("test____label", "test____label"),
        ("__test", "test"),
        ("__1x", "_1x"),
        ("123test", "_123test"),
        (":test", "_test"),
        ("-test", "_test"),
        ("123:test-label@domain", "_123_test_label_domain"),
    ];
    for (raw, want) in cases {
        assert_eq!(sanitize_label(raw).as_deref(), Ok(want), "{raw}");
    }
    for raw in ["", "____", "@#$%", "!!!!"] {
        assert!(sanitize_label(raw).is_err(), "{raw}");
    }
    for ok in ["a", "_a", "model_name", "A1"] {
        assert!(is_valid_label_name(ok), "{ok}");
    }
    for bad in ["", "1a", "__a", "a-b", "a:b"] {
        assert!(!is_valid_label_name(bad), "{bad}");
    }
    let err = sanitize_label("@#$%").unwrap_err();
    assert_eq!(
        err.to_string(),
        "label '@#$%' has no valid character (use a-z, A-Z, 0-9, '_')"
    );
}

#[test]
fn user_labels_may_not_collide_with_automatic_ones() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, Some(1));
    let s = Scope::component("ns", "c").unwrap();
    for label in [
        "dynamo_namespace",
        "dynamo_component",
        "dynamo_endpoint",
        "worker_id",
    ] {
        let err = reg
            .counter(&s, "x_total", "x", &[(label, "v")])
            .unwrap_err();
        assert_eq!(
            err,
            MetricsError::ReservedLabel {
                label: label.into()
            }
        );
        assert!(err.to_string().contains(label));
        assert!(matches!(
            reg.endpoint("ns", "c", "e", &[(label, "v")]),
            Err(MetricsError::ReservedLabel { .. })
        ));
    }
    assert!(matches!(
        reg.endpoint("ns", "c", "e", &[("error_type", "v")]),
        Err(MetricsError::LabelReservedByMetric { .. })
    ));
    assert!(matches!(
        reg.endpoint("ns", "c", "e", &[("le", "v")]),
        Err(MetricsError::LabelReservedByMetric { .. })
    ));
    assert!(matches!(
        reg.histogram(&s, "h", "h", &[("le", "1")], &[1.0]),
        Err(MetricsError::LabelReservedByMetric { .. })
    ));
    for bad in ["", "1x", "a-b", "__x", "a:b", "é"] {
        assert_eq!(
            reg.counter(&s, "x_total", "x", &[(bad, "v")]).unwrap_err(),
            MetricsError::InvalidLabelName { label: bad.into() },
            "{bad:?}"
        );
    }
    assert_eq!(
        reg.counter(&s, "x_total", "x", &[("a", "1"), ("a", "2")])
            .unwrap_err(),
        MetricsError::DuplicateLabel { label: "a".into() }
    );
    // Nothing failed half-way: the registry still renders only the uptime.
    let exp = parse(&reg.render(t0));
    assert_eq!(
        exp.names(),
        BTreeSet::from(["dynamo_component_uptime_seconds"])
    );
}

#[test]
fn conflicting_registrations_are_rejected() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let s = Scope::runtime();
    reg.counter(&s, "jobs_total", "Jobs", &[]).unwrap();
    assert!(matches!(
        reg.gauge(&s, "jobs_total", "Jobs", &[]),
        Err(MetricsError::Conflict { .. })
    ));
    assert!(matches!(
        reg.int_gauge(&s, "jobs_total", "Jobs", &[]),
        Err(MetricsError::Conflict { .. })
    ));
    let err = reg
        .counter(&s, "jobs_total", "Other help", &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "metric 'dynamo_component_jobs_total' is already registered with help 'Jobs'"
    );
    reg.histogram(&s, "lat", "l", &[], &[1.0, 2.0]).unwrap();
    assert!(matches!(
        reg.histogram(&s, "lat", "l", &[], &[1.0, 3.0]),
        Err(MetricsError::Conflict { .. })
    ));
    assert!(matches!(
        reg.counter(&s, "lat_count", "c", &[]),
        Err(MetricsError::HistogramClash { .. })
    ));
    reg.gauge(&s, "q_sum", "q", &[]).unwrap();
    assert!(matches!(
        reg.histogram(&s, "q", "q", &[], &[1.0]),
        Err(MetricsError::HistogramClash { .. })
    ));
    // The endpoint set owns its names.
    reg.counter(
        &Scope::endpoint("a", "b", "c").unwrap(),
        "requests_total",
        "mine",
        &[],
    )
    .unwrap();
    assert!(matches!(
        reg.endpoint("a", "b", "c", &[]),
        Err(MetricsError::Conflict { .. })
    ));
    assert!(matches!(
        reg.counter(&s, "uptime_seconds", "u", &[]),
        Err(MetricsError::Conflict { .. })
    ));
    assert!(matches!(
        reg.counter(&s, "@@", "u", &[]),
        Err(MetricsError::InvalidName(_))
    ));
    parse(&reg.render(t0));
}

#[test]
fn bad_histogram_buckets_are_rejected() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let s = Scope::runtime();
    for buckets in [
        &[][..],
        &[1.0, 1.0],
        &[2.0, 1.0],
        &[1.0, f64::INFINITY],
        &[f64::NAN],
    ] {
        assert!(
            matches!(
                reg.histogram(&s, "h", "h", &[], buckets),
                Err(MetricsError::InvalidBuckets { .. })
            ),
            "{buckets:?}"
        );
    }
}

#[test]
fn user_metrics_record_and_render() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, Some(WORKER));
    let s = Scope::component("ns", "kv").unwrap();
    let c = reg
        .counter(&s, "hits_total", "Hits", &[("tier", "gpu")])
        .unwrap();
    c.inc();
    c.inc_by(4);
    let c2 = reg
        .counter(&s, "hits_total", "Hits", &[("tier", "gpu")])
        .unwrap();
    c2.inc();
    assert_eq!(c.get(), 6, "get-or-create shares the series");
    reg.counter(&s, "hits_total", "Hits", &[("tier", "cpu")])
        .unwrap()
        .inc();
    let g = reg.gauge(&s, "usage", "Usage", &[]).unwrap();
    g.set(0.25);
    g.add(0.5);
    assert_eq!(g.get(), 0.75);
    let ig = reg.int_gauge(&s, "blocks", "Blocks", &[]).unwrap();
    ig.set(10);
    ig.add(-13);
    let h = reg
        .histogram(&s, "size", "Size", &[], &[1.0, 10.0])
        .unwrap();
    for v in [0.5, 1.0, 5.0, 50.0, f64::NAN] {
        h.observe(v);
    }
    assert_eq!(h.count(), 4, "NaN is ignored");
    let text = reg.render(t0);
    let exp = parse(&text);
    let base = [
        ("dynamo_namespace", "ns"),
        ("dynamo_component", "kv"),
        ("worker_id", "1a2b"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut v = base.to_vec();
        v.push(extra);
        v
    };
    assert_eq!(
        exp.value("dynamo_component_hits_total", &with(("tier", "gpu"))),
        Some(6.0)
    );
    assert_eq!(
        exp.value("dynamo_component_hits_total", &with(("tier", "cpu"))),
        Some(1.0)
    );
    assert_eq!(exp.value("dynamo_component_usage", &base), Some(0.75));
    assert_eq!(exp.value("dynamo_component_blocks", &base), Some(-3.0));
    assert_eq!(
        exp.value("dynamo_component_size_bucket", &with(("le", "1"))),
        Some(2.0)
    );
    assert_eq!(
        exp.value("dynamo_component_size_bucket", &with(("le", "10"))),
        Some(3.0)
    );
    assert_eq!(
        exp.value("dynamo_component_size_bucket", &with(("le", "+Inf"))),
        Some(4.0)
    );
    assert_eq!(exp.value("dynamo_component_size_sum", &base), Some(56.5));
    assert_eq!(exp.helps["dynamo_component_hits_total"], "Hits");
}

#[test]
fn special_values_and_escapes_round_trip() {
    let t0 = Instant::now();
    let mut reg = MetricsRegistry::new(t0, None);
    let s = Scope::runtime();
    let nasty = "a \"quoted\" back\\slash\nnewline, = }";
    reg.gauge(&s, "weird", "help with \\ and\nnewline", &[("v", nasty)])
        .unwrap()
        .set(f64::NAN);
    reg.gauge(&s, "pos", "p", &[]).unwrap().set(f64::INFINITY);
    reg.gauge(&s, "neg", "n", &[])
        .unwrap()
        .set(f64::NEG_INFINITY);
    reg.gauge(&s, "tiny", "t", &[]).unwrap().set(1e-300);
    let text = reg.render(t0);
    assert!(
        text.contains(r#"dynamo_component_weird{v="a \"quoted\" back\\slash\nnewline, = }"} NaN"#)
    );
    assert!(text.contains("# HELP dynamo_component_weird help with \\\\ and\\nnewline\n"));
    assert!(text.contains("dynamo_component_pos +Inf\n"));
    assert!(text.contains("dynamo_component_neg -Inf\n"));
    let exp = check_exposition(&text).unwrap();
    let weird = exp
        .samples
        .iter()
        .find(|s| s.name == "dynamo_component_weird")
        .unwrap();
    assert_eq!(weird.labels["v"], nasty);
    assert!(weird.value.is_nan());
    assert_eq!(
        exp.helps["dynamo_component_weird"],
        "help with \\ and\nnewline"
    );
    assert_eq!(exp.value("dynamo_component_tiny", &[]), Some(1e-300));
}

#[test]
fn strict_checker_rejects_invalid_text() {
    // The checker must be able to fail, or the tests above prove nothing.
    let bad = [
        "x 1",                     // no final newline
        "x{a=\"1\",a=\"2\"} 1\n",  // duplicate label
        "x{1a=\"1\"} 1\n",         // bad label name
        "x{a=\"\\t\"} 1\n",        // bad escape
        "x inf\n",                 // Rust spelling of infinity
        "x 1\ny 1\nx 2\n",         // split family (and dup)
        "x 1\n# TYPE x counter\n", // TYPE after samples
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n", // count mismatch
        "x 1 123\n",                                                      // timestamp
        "9x 1\n",                                                         // bad metric name
    ];
    for text in bad {
        assert!(check_exposition(text).is_err(), "accepted {text:?}");
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MetricsRegistry>();
    check::<dynrt_core::metrics::EndpointMetrics>();
    check::<dynrt_core::metrics::InflightRequest>();
    check::<dynrt_core::metrics::Counter>();
    check::<dynrt_core::metrics::Gauge>();
    check::<dynrt_core::metrics::IntGauge>();
    check::<dynrt_core::metrics::Histogram>();
}
