//! Random operation sequences over a client/server pair, checked against a model
//! (`dynrt_core::conn::fuzzing::conn_ops`), and the committed `conn_ops` fuzz corpus.

use std::time::Instant;

use dynrt_core::conn::fuzzing::conn_ops;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_every_invariant(
        data in prop::collection::vec(any::<u8>(), 0..600)
    ) {
        conn_ops(&data, Instant::now());
    }
}

/// A tiny deterministic generator, so the coverage check below is reproducible.
fn lcg_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn the_operation_generator_reaches_the_interesting_paths() {
    let mut total = dynrt_core::conn::fuzzing::OpsStats::default();
    for seed in 0..300 {
        let s = conn_ops(&lcg_bytes(seed, 800), Instant::now());
        total.opened += s.opened;
        total.served += s.served;
        total.completed_with_data += s.completed_with_data;
        total.bytes_received += s.bytes_received;
        total.kills += s.kills;
        total.blocked_sends += s.blocked_sends;
        total.closes.0 += s.closes.0;
        total.closes.1 += s.closes.1;
        total.closes.2 += s.closes.2;
    }
    eprintln!("{total:?}");
    assert!(total.opened > 300, "{total:?}");
    assert!(total.completed_with_data > 30, "{total:?}");
    assert!(total.kills > 30, "{total:?}");
    assert!(total.blocked_sends > 30, "{total:?}");
    assert!(total.closes.0 > 5, "graceful drains: {total:?}");
    assert!(total.closes.1 > 5, "violations: {total:?}");
}

#[test]
fn committed_conn_ops_corpus_replays_cleanly_and_exercises_streams() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/conn_ops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the seed corpus is committed")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut completed = 0;
    for file in &files {
        let stats = conn_ops(&std::fs::read(file).unwrap(), Instant::now());
        completed += stats.completed_with_data;
    }
    assert!(
        completed >= 5,
        "the seeds complete streams with data: {completed}"
    );
}
