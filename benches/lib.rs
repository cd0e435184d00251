//! Benchmarks of the workspace's libraries; see the `[[bench]]` targets
//! (`cargo bench --bench <area>`).

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The Redis the Redis benchmarks use (`HOTEL_TEST_REDIS_URL`, default
/// redis://127.0.0.1:6379), if it answers a PING within two seconds.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("HOTEL_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url.as_str()).ok()?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    redis::cmd("PING").query::<String>(&mut connection).ok()?;
    Some(url)
}

/// Polls a future that is expected to be ready at once (a hit), without a runtime.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::hint::spin_loop();
    }
}

/// Runs `op(i)` `iters` times on each of `threads` threads, started together; returns the
/// wall time of the slowest thread.
pub fn run_threads<F: Fn(usize) + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let offset = t * 7_919;
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        op(offset + i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}
