//! Writing the Prometheus text exposition format, version 0.0.4.
//!
//! The grammar we produce (a subset of what the format allows, byte for byte the style of the
//! `prometheus` crate's `TextEncoder` that Dynamo 1.6.1 uses):
//!
//! ```text
//! family   = "# HELP " name " " help-escaped "\n"
//!            "# TYPE " name " " ("counter" | "gauge" | "histogram") "\n"
//!            sample+
//! sample   = name [suffix] ["{" label ("," label)* "}"] " " value "\n"
//! label    = label-name "=\"" value-escaped "\""
//! value    = decimal integer | Rust's shortest round-trip decimal of an f64 (never an
//!            exponent) | "+Inf" | "-Inf" | "NaN"
//! ```
//!
//! Families appear once each, sorted by name, with all their samples together; label names match
//! `[a-zA-Z_][a-zA-Z0-9_]*` (the registry checks them); in help text `\` and newline are escaped,
//! in label values `\`, `"` and newline are. Histogram buckets are cumulative, in increasing `le`
//! order, end with `le="+Inf"` equal to `_count`, and are followed by `_sum` and `_count`.

use std::fmt::Write as _;

/// A sample value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
}

pub(crate) fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_into(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// One sample line. `labels` are `(name, value)` pairs, already in output order; `extra` is
/// written after them (the `le` of a bucket).
pub(crate) fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: Value,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut sep = '{';
    for (k, v) in labels.iter().copied().chain(extra) {
        out.push(sep);
        out.push_str(k);
        out.push_str("=\"");
        escape_into(out, v, true);
        out.push('"');
        sep = ',';
    }
    if sep == ',' {
        out.push('}');
    }
    out.push(' ');
    match value {
        Value::U64(v) => write!(out, "{v}").expect("writing to a String cannot fail"),
        Value::I64(v) => write!(out, "{v}").expect("writing to a String cannot fail"),
        Value::F64(v) => write_f64(out, v),
    }
    out.push('\n');
}

/// An f64 as the format spells it.
pub(crate) fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        write!(out, "{v}").expect("writing to a String cannot fail");
    }
}

/// An f64 as a `String` (for `le` values).
pub(crate) fn f64_string(v: f64) -> String {
    let mut s = String::new();
    write_f64(&mut s, v);
    s
}

fn escape_into(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
