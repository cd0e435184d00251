//! Hit ratios on a suite of seeded synthetic traces (`crates/query-cache/tests/traces`):
//! `query-cache` (adaptive W-TinyLFU, the default) with 1, 8 and 64 shards against moka,
//! quick_cache and a plain LRU, at three capacities. Prints markdown tables; this
//! measures ratios, not time.
//!
//! `cargo bench --bench query_cache_hit_ratio` (about two minutes). Without `--bench` (as
//! under `cargo test --all-targets`) the traces are cut to a smoke run.
//!
//! Every candidate replays the same requests: a lookup, and on a miss an insert. The
//! query-cache hash is seeded, so its ratios are exact for a trace; quick_cache's
//! `unsync::Cache` and `lru` are deterministic too; moka applies its admission in
//! batches on its own schedule.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::num::NonZeroUsize;

use query_cache::{QueryCache, Ttl};

#[path = "../crates/query-cache/tests/traces/mod.rs"]
mod traces;

use traces::Trace;

const KEY_SPACE: usize = 100_000;
const REQUESTS: usize = 2_000_000;
/// Without `--bench` only a short smoke run.
const SMOKE_REQUESTS: usize = 20_000;
const CAPACITIES: [usize; 3] = [1_000, 5_000, 20_000];
const SHARDS: [usize; 3] = [1, 8, 64];

fn suite(requests: usize) -> Vec<Trace> {
    vec![
        traces::zipf(KEY_SPACE, 0.6, requests, 1),
        traces::zipf(KEY_SPACE, 0.8, requests, 2),
        traces::zipf(KEY_SPACE, 1.0, requests, 3),
        traces::zipf(KEY_SPACE, 1.2, requests, 4),
        traces::looping(25_000, requests),
        traces::zipf_with_scans(KEY_SPACE, 0.9, requests, 20_000, 5_000, 5),
        traces::recency(0.2, 10_000.0, requests, 6),
        traces::shifting(KEY_SPACE, 0.9, requests, requests / 8, 7),
    ]
}

/// Replays `trace` through `lookup` (true on a hit) and `store`; returns the hit ratio in
/// percent.
fn replay(
    trace: &Trace,
    mut lookup: impl FnMut(&str) -> bool,
    mut store: impl FnMut(String, u32),
) -> f64 {
    let mut key = String::new();
    let mut hits = 0_usize;
    for &k in &trace.keys {
        key.clear();
        key.push_str(&k.to_string());
        if lookup(&key) {
            hits += 1;
        } else {
            store(key.clone(), k);
        }
    }
    hits as f64 * 100.0 / trace.keys.len() as f64
}

fn query_cache(trace: &Trace, capacity: usize, shards: usize) -> (f64, usize) {
    let cache = QueryCache::builder()
        .max_entries(capacity)
        .shards(shards)
        .hash_seed(42)
        .build()
        .unwrap();
    let ratio = replay(
        trace,
        |key| cache.get::<u32>(key).unwrap().is_some(),
        |key, value| {
            cache.insert(key, value, Ttl::LONG, &[]);
        },
    );
    (ratio, cache.shard_count())
}

fn moka(trace: &Trace, capacity: usize) -> f64 {
    let cache: moka::sync::Cache<String, u32> = moka::sync::Cache::new(capacity as u64);
    replay(
        trace,
        |key| cache.get(key).is_some(),
        |key, value| cache.insert(key, value),
    )
}

fn quick_cache(trace: &Trace, capacity: usize) -> f64 {
    let mut cache: quick_cache::unsync::Cache<String, u32> =
        quick_cache::unsync::Cache::new(capacity);
    let cache = std::cell::RefCell::new(&mut cache);
    replay(
        trace,
        |key| cache.borrow_mut().get(key).is_some(),
        |key, value| cache.borrow_mut().insert(key, value),
    )
}

fn lru(trace: &Trace, capacity: usize) -> f64 {
    let cache = std::cell::RefCell::new(lru::LruCache::new(NonZeroUsize::new(capacity).unwrap()));
    replay(
        trace,
        |key| cache.borrow_mut().get(key).is_some(),
        |key, value| {
            cache.borrow_mut().put(key, value);
        },
    )
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument (a filter) is ignored.
    let requests = if std::env::args().any(|arg| arg == "--bench") {
        REQUESTS
    } else {
        SMOKE_REQUESTS
    };
    println!("query_cache/hit_ratio: {requests} requests per trace, key space {KEY_SPACE}");
    println!();
    println!(
        "| trace | capacity | query-cache 1 shard | 8 shards | 64 shards | moka | quick_cache | LRU | query-cache − best other | spread over shard counts |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let (mut worst_gap, mut worst_spread) = (f64::MAX, 0.0_f64);
    for trace in suite(requests) {
        for capacity in CAPACITIES {
            let ours: Vec<(f64, usize)> = SHARDS
                .iter()
                .map(|&s| query_cache(&trace, capacity, s))
                .collect();
            let others = [
                moka(&trace, capacity),
                quick_cache(&trace, capacity),
                lru(&trace, capacity),
            ];
            let best_other = others.iter().cloned().fold(f64::MIN, f64::max);
            let ratios: Vec<f64> = ours.iter().map(|(r, _)| *r).collect();
            let low = ratios.iter().cloned().fold(f64::MAX, f64::min);
            let high = ratios.iter().cloned().fold(f64::MIN, f64::max);
            // The default configuration here: 8 shards.
            let gap = ratios[1] - best_other;
            worst_gap = worst_gap.min(gap);
            worst_spread = worst_spread.max(high - low);
            let shards = |i: usize| {
                let (ratio, used) = ours[i];
                if used == SHARDS[i] {
                    format!("{ratio:.2} %")
                } else {
                    format!("{ratio:.2} % ({used})")
                }
            };
            println!(
                "| {} | {capacity} | {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {gap:+.2} pts | {:.2} pts |",
                trace.name,
                shards(0),
                shards(1),
                shards(2),
                others[0],
                others[1],
                others[2],
                high - low,
            );
        }
    }
    println!();
    println!(
        "worst gap to the best other (8 shards): {worst_gap:+.2} pts; widest spread over 1, 8 and 64 shards: {worst_spread:.2} pts"
    );
}
