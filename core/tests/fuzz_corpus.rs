//! Replays every committed fuzz corpus file through the same entry point its cargo-fuzz target
//! uses, so that stable CI covers what the fuzzers found (`cargo fuzz run -s none <target>`
//! grows these directories; see fuzz/README.md).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {target} is empty");
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
    }
}

#[test]
fn dynamo_request_corpus_replays_cleanly() {
    replay(
        "dynamo_request",
        dynrt_core::wire::dynamo::fuzzing::dynamo_request,
    );
}

#[test]
fn two_part_corpus_replays_cleanly() {
    replay("two_part", dynrt_core::wire::dynamo::fuzzing::two_part);
}

#[test]
fn mux_frames_corpus_replays_cleanly() {
    replay("mux_frames", dynrt_core::wire::mux::fuzzing::mux_frames);
}

#[test]
fn callhome_ops_corpus_replays_cleanly() {
    replay("callhome_ops", |data| {
        dynrt_core::callhome::fuzzing::callhome_ops(data, std::time::Instant::now())
    });
}

#[test]
fn zmtp_frames_corpus_replays_cleanly() {
    replay("zmtp_frames", dynrt_core::zmtp::fuzzing::zmtp_frames);
}

#[test]
fn control_message_corpus_replays_cleanly() {
    replay(
        "control_message",
        dynrt_core::wire::dynamo::fuzzing::control_message,
    );
}

#[test]
fn peer_ops_corpus_replays_cleanly() {
    replay("peer_ops", |data| {
        dynrt_core::peers::fuzzing::peer_ops(data, std::time::Instant::now())
    });
}
