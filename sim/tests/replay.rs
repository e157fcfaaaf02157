//! `dynrt-sim --seed N` replays a run: the same trace, byte for byte, every time.

use std::process::Command;

fn replay(args: &[&str]) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_dynrt-sim"))
        .args(args)
        .output()
        .expect("the dynrt-sim binary runs");
    assert!(
        output.status.success(),
        "dynrt-sim {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The same command twice prints the same trace, byte for byte — under the faults that
/// exercise drains (with a 3 s limit), hung handlers, kills and resets: this seed's trace holds
/// a drain cut off by its deadline and phase-3 cuts.
#[test]
fn a_seed_given_on_the_command_line_prints_the_same_trace_twice() {
    let args = [
        "--seed",
        "38",
        "--nodes",
        "4",
        "--callers",
        "3",
        "--faults",
        "drain,handler-stall,kill,reset,stop-reading,lease-expiry",
        "--fault-count",
        "8",
        "--drain-limit",
        "3",
        // The run this seed was chosen for: mux calls only.
        "--dynamo-percent",
        "0",
    ];
    let first = replay(&args);
    let second = replay(&args);
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("DeadlineHit"), "no drain hit its deadline");
    assert!(text.contains("cut (phase 3)"), "phase 3 cut nothing");
    assert!(text.lines().count() > 500, "a short trace");
    assert!(first == second, "the two traces differ");
    // Another seed is another run.
    let mut other = args;
    other[1] = "39";
    assert!(replay(&other) != first);
}
