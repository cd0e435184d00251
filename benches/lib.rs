//! Benchmarks of the workspace's libraries; see the `[[bench]]` targets
//! (`cargo bench --bench <area>`).

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

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
