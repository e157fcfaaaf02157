//! Helpers the scripted-fault tests share.

use std::time::Duration;

use dynrt_sim::{FaultKind, Outcome, ScriptedFault};

/// A scripted fault of `kind` on node `target`, from `secs` for `duration_secs`.
pub(crate) fn at(secs: f64, kind: FaultKind, target: usize, duration_secs: f64) -> ScriptedFault {
    ScriptedFault {
        at: Duration::from_secs_f64(secs),
        kind,
        target,
        duration: Duration::from_secs_f64(duration_secs),
    }
}

/// Fails with the seed and the violation if the run broke an invariant.
pub(crate) fn clean(outcome: &Outcome) {
    assert!(
        outcome.violation.is_none(),
        "seed {}: {}",
        outcome.seed,
        outcome.violation.as_ref().unwrap()
    );
}
