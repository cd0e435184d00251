//! Hit-ratio simulation: a Zipf(0.9) trace replayed against `query-cache` (TinyLFU
//! admission, the default; and plain LRU) and moka, at capacities of 0.1 %, 1 % and 10 %
//! of the key space. Prints a table; this measures ratios, not time.
//!
//! `cargo bench --bench query_cache_hit_ratio`

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use query_cache::{Admission, QueryCache, Ttl};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

const KEY_SPACE: usize = 100_000;
const REQUESTS: usize = 2_000_000;
/// Without `--bench` (as under `cargo test --all-targets`) only a short smoke run.
const SMOKE_REQUESTS: usize = 20_000;
const SEED: u64 = 42;

/// Replays the trace: a lookup, and on a miss a load stored through the cache's own path.
fn ours(trace: &[u32], capacity: usize, admission: Admission, shards: Option<usize>) -> f64 {
    let mut builder = QueryCache::builder()
        .max_entries(capacity)
        .admission(admission);
    if let Some(shards) = shards {
        builder = builder.shards(shards);
    }
    let cache = builder.build().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        for &k in trace {
            let key = format!("k{k}");
            let _ = cache
                .with_cache(&key, Ttl::LONG, &[], move || async move {
                    Ok::<_, std::convert::Infallible>(k)
                })
                .await;
        }
    });
    cache.stats().hit_ratio * 100.0
}

/// Replays the trace on moka. moka applies admission and eviction in batches, so between
/// two maintenance runs it may hold more than `capacity` entries; with `strict` the
/// maintenance runs after every insert, which holds it to its bound at every step (as
/// `query-cache` always is). Returns the hit ratio and the most entries seen at once.
fn moka(trace: &[u32], capacity: usize, strict: bool) -> (f64, u64) {
    let cache: moka::sync::Cache<String, u32> = moka::sync::Cache::new(capacity as u64);
    let (mut hits, mut most) = (0_usize, 0_u64);
    for (i, &k) in trace.iter().enumerate() {
        let key = format!("k{k}");
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, k);
            if strict {
                cache.run_pending_tasks();
            }
        }
        if i % 64 == 0 {
            most = most.max(cache.entry_count());
        }
    }
    (hits as f64 * 100.0 / trace.len() as f64, most)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument (a filter) is ignored.
    let requests = if std::env::args().any(|arg| arg == "--bench") {
        REQUESTS
    } else {
        SMOKE_REQUESTS
    };
    let zipf = Zipf::new(KEY_SPACE as f64, 0.9).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let trace: Vec<u32> = (0..requests)
        .map(|_| zipf.sample(&mut rng) as u32)
        .collect();

    println!(
        "query_cache/hit_ratio: Zipf(0.9), {KEY_SPACE} keys, {requests} requests, seed {SEED}"
    );
    println!(
        "| capacity | query-cache W-TinyLFU (default shards) | query-cache W-TinyLFU (1 shard) | query-cache plain LRU | moka sync (most entries seen) | moka sync, maintenance after each insert | query-cache - moka |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for permille in [1, 10, 100] {
        let capacity = KEY_SPACE * permille / 1000;
        let tiny = ours(&trace, capacity, Admission::TinyLfu, None);
        let tiny_one = ours(&trace, capacity, Admission::TinyLfu, Some(1));
        let lru = ours(&trace, capacity, Admission::Always, None);
        let (moka_ratio, moka_most) = moka(&trace, capacity, false);
        let (moka_strict, _) = moka(&trace, capacity, true);
        println!(
            "| {capacity} ({:.1} %) | {tiny:.2} % | {tiny_one:.2} % | {lru:.2} % | {moka_ratio:.2} % ({moka_most}) | {moka_strict:.2} % | {:+.2} pts |",
            permille as f64 / 10.0,
            tiny - moka_ratio
        );
    }
}
