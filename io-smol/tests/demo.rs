//! The demo (`dynrt_io::demo::run`, what the `demo` example runs) on smol, for one second.

use std::time::Duration;

use dynrt_io::demo::{self, DemoConfig};
use dynrt_smol::SmolRuntime;

#[test]
fn demo_serves_a_cluster_in_one_process_for_a_second() {
    let config = DemoConfig {
        workers: 2,
        concurrency: 8,
        duration: Duration::from_secs(1),
        items: 4,
        ..DemoConfig::default()
    };
    let mut ticks = 0;
    let report = smol::block_on(demo::run(&SmolRuntime::new(), &config, |_| ticks += 1))
        .expect("the demo runs");
    print!("{report}");
    assert!(report.requests > 0, "{report}");
    assert_eq!(report.errors(), 0, "{report}");
    assert_eq!(report.items, report.requests * 4);
    assert_eq!(report.load.latency.count(), report.requests);
    assert_eq!(report.shutdowns.len(), 3);
    assert!(report.shutdowns.iter().all(|s| s.report.is_clean()));
    assert!(ticks >= 5, "progress reported {ticks} times in a second");
}
