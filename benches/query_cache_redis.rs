//! The shared Redis tier of `query-cache` (feature `redis`), side by side in one run:
//!
//! - cached read throughput on 1 and 2 threads through L1 only (no tier), L1+L2 (the
//!   L1 hit path with a tier configured) and L2 only (`l1_max_ttl(0)`: every read is a
//!   Redis round trip plus decoding);
//! - the time an invalidation takes to reach another instance: from `invalidate()` on
//!   instance A (which queues it) until instance B has dropped the key from its L1,
//!   p50/p90/p99/max over 1000 invalidations.
//!
//! `cargo bench --bench query_cache_redis` against the Redis at `HOTEL_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), under a key prefix of its own that it deletes at
//! the end. Without a reachable Redis it prints a SKIP line and exits successfully.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::run_threads;
use criterion::{BenchmarkId, Criterion, Throughput};
use db_connect::testing::RedisPrefix;
use query_cache::{Cacheable, QueryCache, RedisConfig, SharedCodec, Ttl};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const THREADS: [usize; 2] = [1, 2];
const KEYS: usize = 1_000;
const SEQUENCE: usize = 1 << 14;
const INVALIDATIONS: usize = 1_000;

/// Shaped like an availability answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Availability {
    room_type_id: i64,
    start_date: String,
    end_date: String,
    rooms_needed: i32,
    available: bool,
    min_available: i32,
}

impl Cacheable for Availability {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("benches/availability", 1))
    }
}

fn availability(i: usize) -> Availability {
    Availability {
        room_type_id: i as i64,
        start_date: "2026-06-01".into(),
        end_date: "2026-06-04".into(),
        rooms_needed: 1,
        available: !i.is_multiple_of(3),
        min_available: (i % 7) as i32,
    }
}

fn key(i: usize) -> String {
    format!("availability:{i}:2026-06-01:2026-06-04:1")
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    /// The bench's key prefix, emptied when the bench ends.
    redis: RedisPrefix,
}

impl Setup {
    fn tier(&self, l1_max_ttl: Duration) -> QueryCache {
        let config = RedisConfig::new(self.redis.url(), self.redis.prefix())
            .unwrap_or_else(|e| panic!("{e}"))
            .l1_max_ttl(l1_max_ttl)
            // A loaded machine must not turn a slow answer into a failed benchmark read.
            .timeout(Duration::from_millis(250));
        self.runtime.block_on(async {
            let cache = QueryCache::builder()
                .max_entries(10 * KEYS)
                .redis(config)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(cache.wait_for_redis(Duration::from_secs(10)).await);
            cache
        })
    }

    /// Loads every key through `cache` (so into Redis too, when it has a tier).
    fn fill(&self, cache: &QueryCache, keys: &[String]) {
        self.runtime.block_on(async {
            for (i, k) in keys.iter().enumerate() {
                cache
                    .with_cache(k, Ttl::LONG, &["availability"], move || async move {
                        Ok::<_, Infallible>(availability(i))
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
    }
}

fn read_throughput(c: &mut Criterion, setup: &Setup) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sequence: Vec<usize> = (0..SEQUENCE).map(|_| rng.random_range(0..KEYS)).collect();
    let key = |i: usize| keys[sequence[i % SEQUENCE]].as_str();

    let l1_only = QueryCache::builder()
        .max_entries(10 * KEYS)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    setup.fill(&l1_only, &keys);
    // A long cap so that the measured reads are L1 hits, as between two refreshes.
    let both = setup.tier(Duration::from_secs(3_600));
    setup.fill(&both, &keys);
    let l2_only = setup.tier(Duration::ZERO);
    let handle = setup.runtime.handle();
    let read = |cache: &QueryCache, i: usize| {
        let value = handle.block_on(cache.with_cache(
            key(i),
            Ttl::LONG,
            &["availability"],
            || async { Err::<Availability, _>("every key is cached") },
        ));
        assert!(value.is_ok(), "a cached read missed");
        black_box(value.ok());
    };

    let mut group = c.benchmark_group("query_cache/redis_tier_read");
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("l1_only", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|i| read(&l1_only, i)));
        });
        group.bench_function(BenchmarkId::new("l1_plus_l2", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|i| read(&both, i)));
        });
        group.bench_function(BenchmarkId::new("l2_only", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|i| read(&l2_only, i)));
        });
    }
    group.finish();
    let l2 = l2_only.stats().l2.unwrap_or_default();
    let l1 = both.stats();
    println!(
        "l1_plus_l2: {} L1 hits, {} Redis reads; l2_only: {} Redis hits, {} misses, {} errors, {} timeouts",
        l1.hits,
        l1.l2.map_or(0, |l2| l2.hits + l2.misses),
        l2.hits,
        l2.misses,
        l2.errors,
        l2.timeouts
    );
}

fn invalidation_latency(setup: &Setup) {
    let a = setup.tier(Duration::from_secs(3_600));
    let b = setup.tier(Duration::from_secs(3_600));
    let mut latencies: Vec<Duration> = setup.runtime.block_on(async {
        let mut latencies = Vec::with_capacity(INVALIDATIONS);
        let received = b.stats().l2.map_or(0, |l2| l2.messages_received);
        for round in 0..INVALIDATIONS {
            let k = format!("invalidation:{}", round % 10);
            b.with_cache(&k, Ttl::LONG, &[], move || async move {
                Ok::<_, Infallible>(availability(round))
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(b.contains_key(&k));
            let started = Instant::now();
            a.invalidate(&k);
            let arrived = b
                .wait_for_invalidation_messages(received + round as u64 + 1, Duration::from_secs(5))
                .await;
            let took = started.elapsed();
            assert!(
                arrived && !b.contains_key(&k),
                "round {round}: not applied on B"
            );
            latencies.push(took);
        }
        latencies
    });
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "query_cache/redis_invalidation_latency ({INVALIDATIONS} invalidations, invalidate() on A \
         until B's L1 dropped the key): p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let Some(url) = benches::redis_url() else {
        eprintln!(
            "SKIP query_cache_redis: no Redis answers at HOTEL_TEST_REDIS_URL \
             (default redis://127.0.0.1:6379)"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup {
        runtime,
        redis: RedisPrefix::new(&url, "bench:query-cache"),
    };
    if let Some(codec) = Availability::shared_codec() {
        let bytes = codec.encode(&availability(1)).map_or(0, |b| b.len());
        println!("one value in Redis: {bytes} bytes (envelope included)");
    }
    let mut criterion = Criterion::default().configure_from_args();
    read_throughput(&mut criterion, &setup);
    criterion.final_summary();
    invalidation_latency(&setup);
}
