//! The limit settings (`DYN_TCP_MAX_QUEUED_BYTES` … `DYN_REQUEST_MAX_ATTEMPTS`): defaults equal
//! to the library's, good values reach the configs the adapters build, and zero, nonsense,
//! too small and too large values are errors naming the variable, the value and the bound.

use std::num::NonZeroU32;
use std::time::Duration;

use dynrt_core::config::{DistributedConfig, VARIABLES, vars};
use dynrt_core::conn::ConnConfig;
use dynrt_core::router::RetryConfig;

fn one(var: &str, value: &str) -> DistributedConfig {
    DistributedConfig::from_settings([(var, value)])
        .unwrap_or_else(|e| panic!("{var}={value} should parse: {e}"))
}

fn error(var: &str, value: &str) -> String {
    match DistributedConfig::from_settings([(var, value)]) {
        Ok(c) => panic!("{var}={value} should be rejected, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

const TCP_SECONDS: [&str; 2] = [vars::DYN_TCP_STALL_TIMEOUT, vars::DYN_TCP_FRAME_TIMEOUT];
const SYSTEM_SECONDS: [&str; 2] = [
    vars::DYN_SYSTEM_HEADER_READ_TIMEOUT,
    vars::DYN_SYSTEM_BODY_READ_TIMEOUT,
];
const COUNTS: [&str; 3] = [
    vars::DYN_TCP_MAX_CONNECTIONS,
    vars::DYN_SYSTEM_MAX_CONNECTIONS,
    vars::DYN_REQUEST_MAX_ATTEMPTS,
];
const BYTES: [&str; 3] = [
    vars::DYN_TCP_MAX_QUEUED_BYTES,
    vars::DYN_TCP_MAX_PROCESS_OUTPUT_BYTES,
    vars::DYN_SYSTEM_MAX_HEADER_BYTES,
];

fn all() -> Vec<&'static str> {
    [&TCP_SECONDS[..], &SYSTEM_SECONDS, &COUNTS, &BYTES].concat()
}

#[test]
fn the_defaults_are_the_library_defaults() {
    let c = DistributedConfig::from_settings(std::iter::empty::<(&str, &str)>()).expect("parses");
    assert_eq!(c.tcp.conn_config(), ConnConfig::default());
    assert_eq!(c.tcp.max_queued_bytes, 2 * 1024 * 1024);
    assert_eq!(c.tcp.stall_timeout, Duration::from_secs(30));
    assert_eq!(c.tcp.frame_timeout, Duration::from_secs(30));
    assert_eq!(c.tcp.max_connections, 1024);
    assert_eq!(c.tcp.max_process_output_bytes, None);
    assert_eq!(c.system.max_connections, 1024);
    assert_eq!(c.system.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.system.body_read_timeout, Duration::from_secs(10));
    assert_eq!(c.system.max_header_bytes, 16 * 1024);
    assert_eq!(c.request_retry, RetryConfig::default());
    assert!(c.warnings.is_empty());
}

#[test]
fn every_limit_is_a_known_variable() {
    for var in all() {
        assert!(VARIABLES.contains(&var), "{var}");
    }
}

#[test]
fn good_values_reach_the_config_and_the_connection_settings() {
    let c = DistributedConfig::from_settings([
        (vars::DYN_TCP_MAX_QUEUED_BYTES, "65536"),
        (vars::DYN_TCP_STALL_TIMEOUT, " 7 "),
        (vars::DYN_TCP_FRAME_TIMEOUT, "8"),
        (vars::DYN_TCP_MAX_CONNECTIONS, "1"),
        (vars::DYN_TCP_MAX_PROCESS_OUTPUT_BYTES, "1048576"),
        (vars::DYN_TCP_MAX_MESSAGE_SIZE, "20000"),
    ])
    .expect("parses");
    assert_eq!(c.tcp.max_connections, 1);
    assert_eq!(c.tcp.max_process_output_bytes, Some(1024 * 1024));
    let conn = c.tcp.conn_config();
    assert_eq!(conn.max_queued_bytes, 65536);
    assert_eq!(conn.stall_timeout, Some(Duration::from_secs(7)));
    assert_eq!(conn.frame_timeout, Duration::from_secs(8));
    assert_eq!(conn.max_frame_size, 20000);
    // The rest stays at the library's defaults, and the whole is a valid connection config.
    let default = ConnConfig::default();
    assert_eq!(conn.handshake_timeout, default.handshake_timeout);
    assert_eq!(conn.conn_credit, default.conn_credit);
    conn.validate().expect("valid");

    let c = DistributedConfig::from_settings([
        (vars::DYN_SYSTEM_MAX_CONNECTIONS, "3"),
        (vars::DYN_SYSTEM_HEADER_READ_TIMEOUT, "2"),
        (vars::DYN_SYSTEM_BODY_READ_TIMEOUT, "4"),
        (vars::DYN_SYSTEM_MAX_HEADER_BYTES, "1024"),
        (vars::DYN_REQUEST_MAX_ATTEMPTS, "1"),
    ])
    .expect("parses");
    assert_eq!(c.system.max_connections, 3);
    assert_eq!(c.system.header_read_timeout, Duration::from_secs(2));
    assert_eq!(c.system.body_read_timeout, Duration::from_secs(4));
    assert_eq!(c.system.max_header_bytes, 1024);
    assert_eq!(c.request_retry, RetryConfig::never());
    assert_eq!(
        one(vars::DYN_REQUEST_MAX_ATTEMPTS, "5").request_retry,
        RetryConfig::new(NonZeroU32::new(5).unwrap())
    );
}

#[test]
fn empty_means_unset() {
    let default = DistributedConfig::default();
    for var in all() {
        assert_eq!(one(var, "  "), default, "{var}");
    }
}

#[test]
fn zero_is_an_error_naming_the_variable() {
    for var in all() {
        assert_eq!(error(var, "0"), format!("{var}: '0' must be at least 1"));
    }
}

#[test]
fn nonsense_is_an_error_naming_the_variable_and_the_value() {
    // A negative number, a fraction, a word.
    for (var, value) in ["-1", "1.5", "ten"]
        .into_iter()
        .flat_map(|value| all().into_iter().map(move |var| (var, value)))
    {
        let message = error(var, value);
        let expected_problem = if TCP_SECONDS.contains(&var) || SYSTEM_SECONDS.contains(&var) {
            "is not a whole number of seconds"
        } else if BYTES.contains(&var) {
            "is not a whole number of bytes"
        } else {
            "is not a whole number"
        };
        assert_eq!(message, format!("{var}: '{value}' {expected_problem}"));
    }
    // A value with a unit is not guessed at.
    assert_eq!(
        error(vars::DYN_TCP_STALL_TIMEOUT, "30s"),
        "DYN_TCP_STALL_TIMEOUT: '30s' is not a whole number of seconds"
    );
}

#[test]
fn values_below_a_minimum_say_the_minimum() {
    assert_eq!(
        error(vars::DYN_TCP_MAX_QUEUED_BYTES, "16383"),
        "DYN_TCP_MAX_QUEUED_BYTES: '16383' is below the minimum of 16384 bytes \
         (one frame of the smallest size must fit)"
    );
    one(vars::DYN_TCP_MAX_QUEUED_BYTES, "16384");
    assert_eq!(
        error(vars::DYN_TCP_MAX_PROCESS_OUTPUT_BYTES, "1"),
        "DYN_TCP_MAX_PROCESS_OUTPUT_BYTES: '1' is below the minimum of 16384 bytes \
         (one frame of the smallest size must fit)"
    );
    assert_eq!(
        error(vars::DYN_SYSTEM_MAX_HEADER_BYTES, "1023"),
        "DYN_SYSTEM_MAX_HEADER_BYTES: '1023' is below the minimum of 1024 bytes \
         (a probe's request head must fit)"
    );
}

#[test]
fn values_too_large_for_their_setting_say_the_maximum() {
    assert_eq!(
        error(vars::DYN_TCP_MAX_QUEUED_BYTES, "4294967296"),
        "DYN_TCP_MAX_QUEUED_BYTES: '4294967296' is above the maximum of 4294967295 bytes"
    );
    assert_eq!(
        error(vars::DYN_REQUEST_MAX_ATTEMPTS, "4294967296"),
        "DYN_REQUEST_MAX_ATTEMPTS: '4294967296' is above the maximum of 4294967295 attempts"
    );
    // A deadline a year away is allowed; beyond it (where adding it to a clock could
    // overflow) is not.
    for var in [&TCP_SECONDS[..], &SYSTEM_SECONDS].concat() {
        one(var, "31536000");
        assert_eq!(
            error(var, "18446744073709551615"),
            format!("{var}: '18446744073709551615' is above the maximum of 31536000 seconds")
        );
    }
    // Beyond u64: not a number at all.
    assert_eq!(
        error(vars::DYN_TCP_MAX_CONNECTIONS, "99999999999999999999"),
        "DYN_TCP_MAX_CONNECTIONS: '99999999999999999999' is not a whole number"
    );
}

#[test]
fn a_non_utf8_limit_is_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    for var in all() {
        let err =
            DistributedConfig::from_settings([(OsStr::new(var), OsStr::from_bytes(b"1\xff"))])
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{var}: '1\u{FFFD}' is not valid UTF-8")
        );
    }
}
