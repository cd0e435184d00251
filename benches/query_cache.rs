//! Side-by-side throughput of `query-cache` against moka (sync and future caches) and a
//! single `Mutex<lru::LruCache>`, on 1 and 2 threads: the hit path, miss-and-insert, and
//! a 90/10 read/write mix over a Zipf-distributed key set.
//!
//! `cargo bench --bench query_cache`. Multi-threaded cases use `iter_custom`: each of
//! the N threads performs `iters` operations and the wall time of the slowest is
//! reported, with the throughput counting all N×iters operations.

// Benchmarks stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;

use benches::{ready, run_threads};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use query_cache::{Admission, Cacheable, QueryCache, Ttl};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

const THREADS: [usize; 2] = [1, 2];
const HOT_KEYS: usize = 10_000;
const ZIPF_KEYS: usize = 100_000;
const ZIPF_CAPACITY: usize = 10_000;
const SEQUENCE: usize = 1 << 16;

#[derive(Debug)]
struct Row {
    _id: u64,
    _name: String,
}
impl Cacheable for Row {}

fn row(id: usize) -> Row {
    Row {
        _id: id as u64,
        _name: format!("room type {id}"),
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("availability:{i}:2025-06-01"))
        .collect()
}

/// One `with_cache` lookup of `key`, whose loader (run on a miss) makes row `i`.
#[inline]
fn with_cache(cache: &QueryCache, key: &str, i: usize) {
    let value = ready(cache.with_cache(key, Ttl::LONG, &[], move || async move {
        Ok::<_, Infallible>(row(i))
    }));
    black_box(value.ok());
}

fn uniform_sequence(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..SEQUENCE).map(|_| rng.random_range(0..n)).collect()
}

fn query_cache(capacity: usize) -> QueryCache {
    QueryCache::builder()
        .max_entries(capacity)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn moka_sync(capacity: usize) -> moka::sync::Cache<String, Arc<Row>> {
    moka::sync::Cache::new(capacity as u64)
}

fn moka_future(capacity: usize) -> moka::future::Cache<String, Arc<Row>> {
    moka::future::Cache::new(capacity as u64)
}

fn mutex_lru(capacity: usize) -> Mutex<lru::LruCache<String, Arc<Row>>> {
    Mutex::new(lru::LruCache::new(
        NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
    ))
}

fn hit(c: &mut Criterion) {
    let keys = keys(HOT_KEYS);
    let sequence = uniform_sequence(HOT_KEYS, 1);
    let key = |i: usize| keys[sequence[i % SEQUENCE]].as_str();
    let capacity = 2 * HOT_KEYS;

    let ours = query_cache(capacity);
    let sync = moka_sync(capacity);
    let future = moka_future(capacity);
    let baseline = mutex_lru(capacity);
    for (i, k) in keys.iter().enumerate() {
        ours.insert(k.as_str(), row(i), Ttl::LONG, &[]);
        let value = Arc::new(row(i));
        sync.insert(k.clone(), value.clone());
        ready(future.insert(k.clone(), value.clone()));
        baseline.lock().put(k.clone(), value);
    }
    sync.run_pending_tasks();
    ready(future.run_pending_tasks());

    let mut group = c.benchmark_group("query_cache/hit");
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("query_cache_get", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    black_box(ours.get::<Row>(key(i)).ok().flatten());
                })
            });
        });
        group.bench_function(BenchmarkId::new("query_cache_with_cache", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|i| with_cache(&ours, key(i), i)));
        });
        group.bench_function(BenchmarkId::new("moka_sync", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| drop(black_box(sync.get(key(i)))))
            });
        });
        group.bench_function(BenchmarkId::new("moka_future", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    drop(black_box(ready(future.get(key(i)))))
                })
            });
        });
        group.bench_function(BenchmarkId::new("mutex_lru", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    drop(black_box(baseline.lock().get(key(i)).cloned()))
                })
            });
        });
    }
    group.finish();
}

fn miss_insert(c: &mut Criterion) {
    // Far more distinct keys than capacity: nearly every operation inserts a new key and
    // evicts an old one.
    let keys = keys(1 << 20);
    let key = |i: usize| &keys[i.wrapping_mul(0x9e37) % keys.len()];
    let capacity = HOT_KEYS;

    let mut group = c.benchmark_group("query_cache/miss_insert");
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64));
        let ours = query_cache(capacity);
        group.bench_function(BenchmarkId::new("query_cache_insert", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    black_box(ours.insert(key(i).as_str(), row(i), Ttl::LONG, &[]));
                })
            });
        });
        let ours = query_cache(capacity);
        group.bench_function(BenchmarkId::new("query_cache_with_cache", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|i| with_cache(&ours, key(i), i)));
        });
        let sync = moka_sync(capacity);
        group.bench_function(BenchmarkId::new("moka_sync", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    sync.insert(key(i).clone(), Arc::new(row(i)))
                })
            });
        });
        let future = moka_future(capacity);
        group.bench_function(BenchmarkId::new("moka_future_get_with", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    black_box(ready(future.get_with_by_ref(key(i).as_str(), async move {
                        Arc::new(row(i))
                    })));
                })
            });
        });
        let baseline = mutex_lru(capacity);
        group.bench_function(BenchmarkId::new("mutex_lru", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    black_box(baseline.lock().push(key(i).clone(), Arc::new(row(i))));
                })
            });
        });
    }
    group.finish();
}

/// The 90/10 read/write mix over Zipf-distributed keys, the same sequence for every cache:
/// (key index, is a write).
fn zipf_ops() -> Vec<(usize, bool)> {
    let zipf = Zipf::new(ZIPF_KEYS as f64, 1.0).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..SEQUENCE)
        .map(|_| {
            (
                (zipf.sample(&mut rng) as usize).saturating_sub(1),
                rng.random_range(0..10) == 0,
            )
        })
        .collect()
}

fn zipf_mix(c: &mut Criterion) {
    let keys = keys(ZIPF_KEYS);
    let ops = zipf_ops();
    let op = |i: usize| {
        let (k, write) = ops[i % SEQUENCE];
        (k, &keys[k], write)
    };

    let mut group = c.benchmark_group("query_cache/zipf_90_10");
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64));
        let ours = query_cache(ZIPF_CAPACITY);
        group.bench_function(BenchmarkId::new("query_cache", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    let (k, key, write) = op(i);
                    if write || ours.get::<Row>(key).ok().flatten().is_none() {
                        ours.insert(key.as_str(), row(k), Ttl::LONG, &[]);
                    }
                })
            });
        });
        let sync = moka_sync(ZIPF_CAPACITY);
        group.bench_function(BenchmarkId::new("moka_sync", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    let (k, key, write) = op(i);
                    if write || sync.get(key).is_none() {
                        sync.insert(key.clone(), Arc::new(row(k)));
                    }
                })
            });
        });
        let future = moka_future(ZIPF_CAPACITY);
        group.bench_function(BenchmarkId::new("moka_future", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    let (k, key, write) = op(i);
                    if write || ready(future.get(key)).is_none() {
                        ready(future.insert(key.clone(), Arc::new(row(k))));
                    }
                })
            });
        });
        let baseline = mutex_lru(ZIPF_CAPACITY);
        group.bench_function(BenchmarkId::new("mutex_lru", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    let (k, key, write) = op(i);
                    let mut lru = baseline.lock();
                    if write || lru.get(key.as_str()).is_none() {
                        lru.put(key.clone(), Arc::new(row(k)));
                    }
                })
            });
        });
    }
    group.finish();
}

/// Plain LRU admission, for comparison with the default TinyLFU on the same mix.
fn zipf_mix_lru(c: &mut Criterion) {
    let keys = keys(ZIPF_KEYS);
    let ops = zipf_ops();
    let mut group = c.benchmark_group("query_cache/zipf_90_10");
    for threads in THREADS {
        group.throughput(Throughput::Elements(threads as u64));
        let ours = QueryCache::builder()
            .max_entries(ZIPF_CAPACITY)
            .admission(Admission::Always)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(BenchmarkId::new("query_cache_plain_lru", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|i| {
                    let (k, write) = ops[i % SEQUENCE];
                    let key = keys[k].as_str();
                    if write || ours.get::<Row>(key).ok().flatten().is_none() {
                        ours.insert(key, row(k), Ttl::LONG, &[]);
                    }
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hit, miss_insert, zipf_mix, zipf_mix_lru);
criterion_main!(benches);
