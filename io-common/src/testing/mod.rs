//! Test scenarios written once and run by both adapters' integration tests (and by the
//! tokio↔smol interop tests). Not part of the public API.

pub mod mux;

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::future;

use crate::runtime::{self, Runtime};

/// Runs `fut`, failing the test if it takes longer than `limit`.
pub async fn within<R: Runtime, T>(
    rt: &R,
    limit: Duration,
    what: &str,
    fut: impl Future<Output = T>,
) -> T {
    let deadline = Instant::now() + limit;
    match future::or(async { Some(fut.await) }, async {
        runtime::sleep_until(rt, deadline).await;
        None
    })
    .await
    {
        Some(value) => value,
        None => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Polls `check` every 5 ms until it holds, failing the test after `limit`.
pub async fn eventually<R: Runtime>(
    rt: &R,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not true within {limit:?}"
        );
        runtime::sleep_until(rt, Instant::now() + Duration::from_millis(5)).await;
    }
}
