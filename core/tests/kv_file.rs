//! Dynamo's file-store layout: file names, temp files, keep-alive interval.

use std::time::Duration;

use dynrt_core::kv::file::{
    DEFAULT_TTL, MIN_TTL, TEMP_FILE_PREFIX, file_name, is_temp_file_name, keep_alive_interval,
    key_from_file_name,
};

#[test]
fn file_names_escape_everything_but_ascii_alphanumerics_like_dynamo() {
    // The example from 1.6.1's `Key::url_safe` documentation.
    assert_eq!(
        file_name("dynamo/backend/generate/17216e63492ef21f"),
        "dynamo%2Fbackend%2Fgenerate%2F17216e63492ef21f"
    );
    assert_eq!(file_name("a_b-c.d"), "a%5Fb%2Dc%2Ed");
    assert_eq!(file_name("é"), "%C3%A9");
    assert_eq!(file_name(""), "");
}

#[test]
fn file_names_decode_back_to_their_keys() {
    for key in [
        "ns/c/e/1a2b",
        "v1/mdc/ns/c/e/ff",
        "with space/%/é/.tmp_x",
        "",
    ] {
        assert_eq!(key_from_file_name(&file_name(key)), key);
    }
    assert_eq!(key_from_file_name("a%2fb"), "a/b", "lower-case escapes too");
}

#[test]
fn malformed_escapes_are_kept_literally_and_bad_utf8_replaced() {
    assert_eq!(key_from_file_name("100%"), "100%");
    assert_eq!(key_from_file_name("%zz%4"), "%zz%4");
    assert_eq!(key_from_file_name("%FF"), "\u{FFFD}");
}

#[test]
fn temp_files_are_recognised_and_no_key_file_looks_like_one() {
    assert!(is_temp_file_name(&format!(
        "{TEMP_FILE_PREFIX}0123456789abcdef"
    )));
    assert!(!is_temp_file_name(&file_name(".tmp_trick")));
}

#[test]
fn keep_alive_runs_at_a_third_of_the_shortest_ttl_within_bounds() {
    assert_eq!(DEFAULT_TTL, Duration::from_secs(10));
    assert_eq!(
        keep_alive_interval(Duration::from_secs(9)),
        Duration::from_secs(3)
    );
    assert_eq!(
        keep_alive_interval(Duration::from_secs(60)),
        DEFAULT_TTL / 3,
        "1.6.1 never sweeps less often than a third of its default TTL"
    );
    assert_eq!(keep_alive_interval(Duration::from_millis(100)), MIN_TTL);
}
