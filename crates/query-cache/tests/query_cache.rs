//! Behaviour of the cache through its public API. Time-based tests run on tokio's paused
//! clock: nothing here sleeps for real.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use query_cache::{
    Admission, Cacheable, Error, LoadError, PrewarmJob, QueryCache, QueryCacheBuilder, Ttl,
};
use tokio::sync::{Notify, oneshot};
use tokio::time::{advance, sleep};

#[cfg(feature = "redis")]
mod redis_tier;

#[derive(Debug, Clone, PartialEq)]
struct Rooms(Vec<u32>);
impl Cacheable for Rooms {}

#[derive(Debug, Clone, PartialEq)]
struct DbError(&'static str);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A one-shard, plain-LRU cache: eviction order is then fully predictable.
fn one_shard(max_entries: usize) -> QueryCache {
    QueryCache::builder()
        .max_entries(max_entries)
        .shards(1)
        .admission(Admission::Always)
        .build()
        .expect("valid config")
}

/// A loader that counts its runs and returns `value` after `delay` of (paused) time.
fn counted<T: Cacheable + Clone>(
    runs: &Arc<AtomicUsize>,
    delay: Duration,
    value: T,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<T, DbError>> + Send>> + Send + 'static
{
    let runs = Arc::clone(runs);
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            sleep(delay).await;
            Ok(value)
        })
    }
}

/// Yields until `condition` holds; fails (instead of hanging) if it never does.
async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_misses_run_one_loader() {
    let cache = QueryCache::builder().build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            let loader = counted(&runs, Duration::from_millis(50), Rooms(vec![1, 2, 3]));
            tokio::spawn(async move { cache.with_cache("rooms", Ttl::SHORT, &[], loader).await })
        })
        .collect();
    let mut values = Vec::new();
    for caller in callers {
        values.push(caller.await.unwrap().unwrap());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "exactly one loader run");
    assert!(
        values.iter().all(|v| Arc::ptr_eq(v, &values[0])),
        "all share one value"
    );
    assert_eq!(*values[0], Rooms(vec![1, 2, 3]));
    let stats = cache.stats();
    assert_eq!(
        (stats.misses, stats.loads, stats.single_flight_joins),
        (100, 1, 99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_holds_on_a_multi_threaded_runtime() {
    let cache = QueryCache::builder().build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .with_cache("k", Ttl::SHORT, &[], move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, Infallible>(42_u64)
                    })
                    .await
            })
        })
        .collect();
    // Release the leader only once every other caller has joined it.
    wait_until(|| cache.stats().single_flight_joins == 99).await;
    gate.notify_one();
    for caller in callers {
        assert_eq!(*caller.await.unwrap().unwrap(), 42);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn loader_errors_reach_every_waiter_and_are_not_cached() {
    let cache = QueryCache::builder().build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .with_cache("k", Ttl::SHORT, &[], move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        sleep(Duration::from_millis(10)).await;
                        Err::<u64, _>(DbError("connection reset"))
                    })
                    .await
            })
        })
        .collect();
    let mut errors = Vec::new();
    for caller in callers {
        match caller.await.unwrap() {
            Err(LoadError::Loader { key, source }) => {
                assert_eq!(key.as_str(), "k");
                errors.push(source);
            }
            other => panic!("expected the loader error, got {other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        errors
            .iter()
            .all(|e| Arc::ptr_eq(e, &errors[0]) && **e == DbError("connection reset"))
    );
    assert_eq!(cache.entry_count(), 0, "errors are not cached");

    let value = cache
        .with_cache("k", Ttl::SHORT, &[], counted(&runs, Duration::ZERO, 7_u64))
        .await
        .unwrap();
    assert_eq!(
        (*value, runs.load(Ordering::SeqCst)),
        (7, 2),
        "the next call loads again"
    );
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_does_not_wedge_its_key() {
    let cache = QueryCache::builder().build().unwrap();
    let leader_started = Arc::new(Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), leader_started.clone());
        tokio::spawn(async move {
            cache
                .with_cache("k", Ttl::SHORT, &[], move || async move {
                    started.notify_one();
                    std::future::pending::<Result<u64, Infallible>>().await
                })
                .await
        })
    };
    leader_started.notified().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let (cache, loader) = (
            cache.clone(),
            counted(&runs, Duration::from_millis(5), 2_u64),
        );
        tokio::spawn(async move { cache.with_cache("k", Ttl::SHORT, &[], loader).await })
    };
    wait_until(|| cache.stats().single_flight_joins == 1).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    assert_eq!(
        *waiter.await.unwrap().unwrap(),
        2,
        "the waiter loaded with its own loader"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().abandoned_loads, 1);

    // A leader dropped with nobody waiting: the next caller simply loads.
    let timed_out = tokio::time::timeout(
        Duration::from_millis(1),
        cache.with_cache(
            "other",
            Ttl::SHORT,
            &[],
            counted(&runs, Duration::from_secs(60), 1_u64),
        ),
    )
    .await;
    assert!(timed_out.is_err());
    let value = cache
        .with_cache(
            "other",
            Ttl::SHORT,
            &[],
            counted(&runs, Duration::ZERO, 9_u64),
        )
        .await
        .unwrap();
    assert_eq!(*value, 9);
    assert_eq!(cache.stats().abandoned_loads, 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loader_does_not_wedge_its_key() {
    let cache = QueryCache::builder().build().unwrap();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .with_cache("k", Ttl::SHORT, &[], || async {
                    sleep(Duration::from_millis(10)).await;
                    panic!("loader bug");
                    #[allow(unreachable_code)]
                    Ok::<u64, Infallible>(0)
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let (cache, loader) = (cache.clone(), counted(&runs, Duration::ZERO, 5_u64));
        tokio::spawn(async move { cache.with_cache("k", Ttl::SHORT, &[], loader).await })
    };
    assert!(leader.await.unwrap_err().is_panic());
    assert_eq!(*waiter.await.unwrap().unwrap(), 5);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get::<u64>("k").unwrap().as_deref(), Some(&5));
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    let cache = QueryCache::builder().build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let load = |value: u64| counted(&runs, Duration::ZERO, value);
    assert_eq!(
        *cache
            .with_cache("k", Ttl::VERY_SHORT, &[], load(1))
            .await
            .unwrap(),
        1
    );
    advance(Duration::from_secs(59)).await;
    assert_eq!(
        *cache
            .with_cache("k", Ttl::VERY_SHORT, &[], load(2))
            .await
            .unwrap(),
        1,
        "still fresh"
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        cache.get::<u64>("k").unwrap(),
        None,
        "never returned once expired"
    );
    assert_eq!(
        *cache
            .with_cache("k", Ttl::VERY_SHORT, &[], load(3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().expirations, 1);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let cache = QueryCache::builder().build().unwrap();
    let ttl = Ttl::VERY_SHORT.stale_while_revalidate(Duration::from_secs(30));
    let runs = Arc::new(AtomicUsize::new(0));
    cache
        .with_cache("report", ttl, &[], counted(&runs, Duration::ZERO, 1_u64))
        .await
        .unwrap();

    advance(Duration::from_secs(61)).await;
    // Stale: answered at once, one refresh (taking 5 s) starts in the background.
    let refresh_gate = Arc::new(Notify::new());
    let refresh = {
        let (runs, gate) = (runs.clone(), refresh_gate.clone());
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok::<_, DbError>(2_u64)
        }
    };
    assert_eq!(
        *cache.with_cache("report", ttl, &[], refresh).await.unwrap(),
        1
    );
    tokio::task::yield_now().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the refresh started");
    // More stale hits while it runs: no second refresh.
    for _ in 0..5 {
        let value = cache
            .with_cache("report", ttl, &[], counted(&runs, Duration::ZERO, 99_u64))
            .await;
        assert_eq!(*value.unwrap(), 1);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    refresh_gate.notify_one();
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(
        cache.get::<u64>("report").unwrap().as_deref(),
        Some(&2),
        "refreshed"
    );
    let stats = cache.stats();
    assert_eq!((stats.stale_hits, stats.loads), (6, 2));
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_stale_value_until_the_grace_ends() {
    let cache = QueryCache::builder().build().unwrap();
    let ttl = Ttl::VERY_SHORT.stale_while_revalidate(Duration::from_secs(30));
    let runs = Arc::new(AtomicUsize::new(0));
    let failing = || {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<u64, _>(DbError("down"))
        }
    };
    cache
        .with_cache("report", ttl, &[], counted(&runs, Duration::ZERO, 1_u64))
        .await
        .unwrap();
    advance(Duration::from_secs(70)).await;
    assert_eq!(
        *cache
            .with_cache("report", ttl, &[], failing())
            .await
            .unwrap(),
        1
    );
    tokio::task::yield_now().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().load_errors, 1);
    advance(Duration::from_secs(19)).await; // 89 s: still inside the grace
    assert_eq!(
        *cache
            .with_cache("report", ttl, &[], failing())
            .await
            .unwrap(),
        1
    );
    tokio::task::yield_now().await;
    advance(Duration::from_secs(1)).await; // 90 s: grace over
    let after = cache.with_cache("report", ttl, &[], failing()).await;
    assert!(
        matches!(after, Err(LoadError::Loader { .. })),
        "no stale value past the grace"
    );
    assert_eq!(cache.stats().expirations, 1);
}

#[tokio::test]
async fn eviction_follows_lru_order_within_a_shard() {
    let cache = one_shard(3);
    for key in ["a", "b", "c"] {
        assert!(cache.insert(key, key.to_owned(), Ttl::LONG, &[]));
    }
    assert!(cache.get::<String>("a").unwrap().is_some()); // a becomes most recent
    cache.insert("d", "d".to_owned(), Ttl::LONG, &[]);
    assert_eq!(
        cache.get::<String>("b").unwrap(),
        None,
        "b was least recently used"
    );
    cache
        .with_cache("e", Ttl::LONG, &[], || async {
            Ok::<_, Infallible>("e".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(cache.get::<String>("c").unwrap(), None, "then c");
    for key in ["a", "d", "e"] {
        assert!(cache.get::<String>(key).unwrap().is_some(), "{key} kept");
    }
    assert_eq!(cache.stats().evictions, 2);
}

#[tokio::test]
async fn the_entry_bound_is_never_exceeded() {
    let capacity = 3 * QueryCacheBuilder::MIN_SHARD_ENTRIES + 7;
    for shards in [1, 2, 3, 16] {
        let cache = QueryCache::builder()
            .max_entries(capacity)
            .shards(shards)
            .build()
            .unwrap();
        assert_eq!(cache.shard_count(), shards.min(3));
        for i in 0..3_000_u64 {
            cache
                .with_cache(format!("k{i}"), Ttl::LONG, &[], move || async move {
                    Ok::<_, Infallible>(i)
                })
                .await
                .unwrap();
            if i % 7 == 0 {
                cache.insert(format!("direct{i}"), i, Ttl::LONG, &[]);
            }
            if i % 100 == 0 {
                assert!(
                    cache.entry_count() <= capacity,
                    "{} entries with {shards} shards",
                    cache.entry_count()
                );
            }
        }
        assert!(
            cache.entry_count() > capacity - shards,
            "shards are used, not left empty"
        );
    }
}

/// `insert` goes through the same admission as a load: a `get` + `insert` loop gets
/// exactly the hit ratio of `with_cache`, and a scan of one-off keys inserted directly
/// does not push out the popular ones.
#[tokio::test]
async fn insert_and_with_cache_share_one_eviction_policy() {
    let build = || {
        QueryCache::builder()
            .max_entries(100)
            .hash_seed(3)
            .build()
            .unwrap()
    };
    // 20 hot keys, then a scan of 1 000 one-off keys, three times over.
    let trace: Vec<String> = (0..3)
        .flat_map(|round| {
            let hot = (0..400).map(|i| format!("hot{}", i % 20));
            let scan = (0..1_000).map(move |i| format!("scan{round}-{i}"));
            hot.chain(scan)
        })
        .collect();
    let loaded = build();
    for key in &trace {
        loaded
            .with_cache(key, Ttl::LONG, &[], || async { Ok::<_, Infallible>(1_u8) })
            .await
            .unwrap();
    }
    let inserted = build();
    for key in &trace {
        if inserted.get::<u8>(key).unwrap().is_none() {
            inserted.insert(key.as_str(), 1_u8, Ttl::LONG, &[]);
        }
    }
    let (loaded, inserted) = (loaded.stats(), inserted.stats());
    assert_eq!(
        (loaded.hits, loaded.misses),
        (inserted.hits, inserted.misses)
    );
    // Every hot key hits on every request but its very first.
    assert_eq!(inserted.hits, 3 * 400 - 20);
}

#[derive(Debug)]
struct Blob(usize);
impl Cacheable for Blob {
    fn weight(&self) -> usize {
        self.0
    }
}

#[tokio::test]
async fn the_weight_bound_is_never_exceeded() {
    let cache = QueryCache::builder()
        .max_entries(1_000)
        .max_weight(1_000)
        .shards(2)
        .build()
        .unwrap();
    for i in 0..300_usize {
        let size = 10 + (i * 37) % 200;
        let value = cache
            .with_cache(format!("k{i}"), Ttl::LONG, &[], move || async move {
                Ok::<_, Infallible>(Blob(size))
            })
            .await
            .unwrap();
        assert_eq!(value.0, size);
        let stats = cache.stats();
        assert!(
            stats.weight <= 1_000,
            "weight {} over the bound",
            stats.weight
        );
    }
    // A value heavier than a shard's share (500) is returned but not stored.
    let big = cache
        .with_cache("big", Ttl::LONG, &[], || async {
            Ok::<_, Infallible>(Blob(501))
        })
        .await
        .unwrap();
    assert_eq!(big.0, 501);
    assert!(cache.get::<Blob>("big").unwrap().is_none());
    assert!(!cache.insert("big", Blob(600), Ttl::LONG, &[]));
    assert_eq!(cache.stats().rejected, 2);
}

#[tokio::test]
async fn asking_with_the_wrong_type_is_an_error() {
    let cache = QueryCache::builder().build().unwrap();
    cache.insert("k", String::from("text"), Ttl::LONG, &[]);
    let wrong = cache
        .with_cache("k", Ttl::LONG, &[], || async { Ok::<_, Infallible>(1_u64) })
        .await;
    match wrong {
        Err(LoadError::Cache(Error::TypeMismatch {
            key,
            expected,
            found,
        })) => {
            assert_eq!(key.as_str(), "k");
            assert_eq!(expected, "u64");
            assert_eq!(found, "alloc::string::String");
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    assert!(matches!(
        cache.get::<u64>("k"),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        cache
            .get::<String>("k")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("text")
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_of_another_type_gets_an_error_not_a_panic() {
    let cache = QueryCache::builder().build().unwrap();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .with_cache("k", Ttl::LONG, &[], || async {
                    sleep(Duration::from_millis(10)).await;
                    Ok::<_, Infallible>(1_u64)
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let waiter = cache
        .with_cache("k", Ttl::LONG, &[], || async {
            Ok::<_, Infallible>(String::new())
        })
        .await;
    assert!(matches!(
        waiter,
        Err(LoadError::Cache(Error::TypeMismatch { .. }))
    ));
    assert_eq!(*leader.await.unwrap().unwrap(), 1);
}

type GatedTask = tokio::task::JoinHandle<Result<Arc<u64>, LoadError<Infallible>>>;

/// Starts a load of `key` whose loader signals `started` and then waits for `release`.
fn gated_load(
    cache: &QueryCache,
    key: &'static str,
    tags: &'static [&'static str],
    value: u64,
) -> (oneshot::Receiver<()>, oneshot::Sender<()>, GatedTask) {
    let (started_tx, started) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<()>();
    let cache = cache.clone();
    let task = tokio::spawn(async move {
        cache
            .with_cache(key, Ttl::LONG, tags, move || async move {
                // The test awaits `started` and sends `release`; a failure there fails the test.
                let _ = started_tx.send(());
                let _ = release_rx.await;
                Ok(value)
            })
            .await
    });
    (started, release, task)
}

#[tokio::test]
async fn no_stale_fill_when_the_key_is_invalidated_during_the_load() {
    let cache = QueryCache::builder().build().unwrap();
    let (started, release, task) = gated_load(&cache, "k", &[], 1);
    started.await.unwrap(); // the loader has read the "old" data
    assert!(!cache.invalidate("k")); // the write: nothing stored yet, but the load is marked
    // A caller arriving after the invalidation must not join the old load.
    let fresh = cache
        .with_cache("k", Ttl::LONG, &[], || async { Ok::<_, Infallible>(2_u64) })
        .await
        .unwrap();
    assert_eq!(*fresh, 2);
    release.send(()).unwrap();
    assert_eq!(
        *task.await.unwrap().unwrap(),
        1,
        "the old load still answers its caller"
    );
    assert_eq!(
        cache.get::<u64>("k").unwrap().as_deref(),
        Some(&2),
        "and did not overwrite"
    );
    assert_eq!(cache.stats().discarded_loads, 1);
}

#[tokio::test]
async fn no_stale_fill_when_a_tag_is_invalidated_during_the_load() {
    let cache = QueryCache::builder().build().unwrap();
    let (started, release, task) = gated_load(
        &cache,
        "availability:7",
        &["room-type:7", "availability"],
        1,
    );
    started.await.unwrap();
    assert_eq!(cache.invalidate_tag("room-type:7"), 0);
    release.send(()).unwrap();
    assert_eq!(*task.await.unwrap().unwrap(), 1);
    assert_eq!(
        cache.get::<u64>("availability:7").unwrap(),
        None,
        "not stored"
    );
    assert_eq!(cache.stats().discarded_loads, 1);
    // Without an invalidation the same load is stored.
    let (started, release, task) = gated_load(
        &cache,
        "availability:7",
        &["room-type:7", "availability"],
        3,
    );
    started.await.unwrap();
    release.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        cache.get::<u64>("availability:7").unwrap().as_deref(),
        Some(&3)
    );
}

#[tokio::test]
async fn no_stale_fill_after_prefix_or_full_invalidation() {
    let cache = QueryCache::builder().build().unwrap();
    let (started, release, task) = gated_load(&cache, "report:2025", &[], 1);
    started.await.unwrap();
    cache.invalidate_prefix("report:");
    release.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(cache.get::<u64>("report:2025").unwrap(), None);

    let (started, release, task) = gated_load(&cache, "report:2025", &[], 1);
    started.await.unwrap();
    cache.invalidate_all();
    release.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(cache.get::<u64>("report:2025").unwrap(), None);
    assert_eq!(cache.stats().discarded_loads, 2);
}

#[tokio::test]
async fn invalidation_by_key_tag_prefix_and_all() {
    let cache = QueryCache::builder().build().unwrap();
    cache.insert("room-types", 1_u64, Ttl::LONG, &["room-types"]);
    cache.insert(
        "availability:7:a",
        2_u64,
        Ttl::SHORT,
        &["room-type:7", "availability"],
    );
    cache.insert(
        "availability:7:b",
        3_u64,
        Ttl::SHORT,
        &["room-type:7", "availability"],
    );
    cache.insert(
        "availability:8:a",
        4_u64,
        Ttl::SHORT,
        &["room-type:8", "availability"],
    );
    cache.insert("report:2025-01", 5_u64, Ttl::MEDIUM, &["reports"]);
    cache.insert("report:2025-02", 6_u64, Ttl::MEDIUM, &["reports"]);

    assert_eq!(cache.invalidate_tag("room-type:7"), 2);
    assert_eq!(cache.invalidate_tag("room-type:7"), 0);
    assert_eq!(cache.invalidate_tag("never-used"), 0);
    assert!(cache.get::<u64>("availability:8:a").unwrap().is_some());
    assert_eq!(cache.invalidate_prefix("report:"), 2);
    assert!(cache.invalidate("room-types"));
    assert!(!cache.invalidate("room-types"));
    assert_eq!(cache.entry_count(), 1);
    assert_eq!(cache.invalidate_all(), 1);
    assert_eq!(cache.entry_count(), 0);
    assert_eq!(cache.stats().invalidations, 6);
    // An entry stored after a tag invalidation is valid.
    cache.insert("availability:7:a", 7_u64, Ttl::SHORT, &["room-type:7"]);
    assert_eq!(
        cache.get::<u64>("availability:7:a").unwrap().as_deref(),
        Some(&7)
    );
}

#[tokio::test]
async fn the_admission_filter_keeps_popular_keys_through_a_scan() {
    let build = |admission| {
        QueryCache::builder()
            .max_entries(10)
            .shards(1)
            .admission(admission)
            .build()
            .unwrap()
    };
    for (admission, survives) in [(Admission::TinyLfu, true), (Admission::Always, false)] {
        let cache = build(admission);
        for round in 0..5_u64 {
            for hot in 0..5_u64 {
                cache
                    .with_cache(format!("hot{hot}"), Ttl::LONG, &[], move || async move {
                        Ok::<_, Infallible>(round)
                    })
                    .await
                    .unwrap();
            }
        }
        for cold in 0..100_u64 {
            cache
                .with_cache(format!("cold{cold}"), Ttl::LONG, &[], move || async move {
                    Ok::<_, Infallible>(cold)
                })
                .await
                .unwrap();
        }
        let kept = (0..5)
            .filter(|hot| cache.get::<u64>(format!("hot{hot}")).unwrap().is_some())
            .count();
        assert_eq!(kept == 5, survives, "{admission:?}: {kept} hot keys kept");
    }
}

#[tokio::test(start_paused = true)]
async fn every_statistic_is_counted_exactly() {
    let cache = QueryCache::builder()
        .max_entries(2)
        .max_weight(64)
        .shards(1)
        .admission(Admission::Always)
        .build()
        .unwrap();
    let ok = |v: u64, ms: u64| {
        move || async move {
            sleep(Duration::from_millis(ms)).await;
            Ok::<_, DbError>(v)
        }
    };
    // Plain misses, hits, errors, evictions, expiry, invalidation.
    cache
        .with_cache("a", Ttl::VERY_SHORT, &["t"], ok(1, 100))
        .await
        .unwrap(); // miss 1, load 1 (100 ms), insert 1
    cache
        .with_cache("a", Ttl::VERY_SHORT, &["t"], ok(9, 0))
        .await
        .unwrap(); // hit 1
    cache
        .with_cache("a", Ttl::VERY_SHORT, &["t"], ok(9, 0))
        .await
        .unwrap(); // hit 2
    let failed = cache
        .with_cache("b", Ttl::SHORT, &[], || async {
            sleep(Duration::from_millis(50)).await;
            Err::<u64, _>(DbError("boom"))
        })
        .await; // miss 2, load 2 (50 ms), load error 1
    assert!(failed.is_err());
    cache
        .with_cache("b", Ttl::SHORT, &[], ok(2, 150))
        .await
        .unwrap(); // miss 3, load 3 (150 ms), insert 2
    cache
        .with_cache("c", Ttl::SHORT, &[], ok(3, 0))
        .await
        .unwrap(); // miss 4, load 4, insert 3, eviction 1 (a)
    assert_eq!(cache.get::<u64>("a").unwrap(), None); // miss 5
    cache.insert("d", 4_u64, Ttl::VERY_SHORT, &["t"]); // insert 4, eviction 2 (b)
    advance(Duration::from_secs(61)).await;
    assert_eq!(cache.get::<u64>("d").unwrap(), None); // miss 6, expiration 1
    assert_eq!(cache.invalidate_tag("t"), 0); // d already gone
    assert!(cache.invalidate("c")); // invalidation 1; the cache is empty

    // Stale-while-revalidate: a stale hit and its background refresh.
    let swr = Ttl::VERY_SHORT.stale_while_revalidate(Duration::from_secs(60));
    cache.with_cache("e", swr, &[], ok(5, 0)).await.unwrap(); // miss 7, load 5, insert 5
    advance(Duration::from_secs(61)).await;
    assert_eq!(*cache.with_cache("e", swr, &[], ok(6, 0)).await.unwrap(), 5); // hit 3, stale hit 1
    tokio::task::yield_now().await; // the refresh: load 6, insert 6 (replaces e)
    assert_eq!(cache.get::<u64>("e").unwrap().as_deref(), Some(&6)); // hit 4

    // Single flight with an abandoned leader.
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .with_cache("f", Ttl::SHORT, &[], || async {
                    std::future::pending::<Result<u64, DbError>>().await
                })
                .await
        })
    };
    tokio::task::yield_now().await; // miss 8: the leader registers its load
    let waiter = {
        let (cache, loader) = (cache.clone(), ok(7, 0));
        tokio::spawn(async move { cache.with_cache("f", Ttl::SHORT, &[], loader).await })
    };
    tokio::task::yield_now().await; // miss 9, join 1
    leader.abort(); // abandoned 1; the waiter loads: load 7, insert 7
    assert_eq!(*waiter.await.unwrap().unwrap(), 7);

    // A load invalidated while running is discarded.
    let (started, release, task) = gated_load(&cache, "g", &[], 8); // miss 10
    started.await.unwrap();
    assert!(!cache.invalidate("g"));
    release.send(()).unwrap();
    task.await.unwrap().unwrap(); // load 8, discarded 1

    // Too heavy for the weight bound.
    assert!(!cache.insert("h", Blob(100), Ttl::SHORT, &[])); // rejected 1

    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.stale_hits,
            stats.loads,
            stats.load_errors
        ),
        (4, 10, 1, 8, 1)
    );
    assert_eq!(
        (
            stats.abandoned_loads,
            stats.discarded_loads,
            stats.rejected,
            stats.single_flight_joins
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (
            stats.inserts,
            stats.evictions,
            stats.expirations,
            stats.invalidations
        ),
        (7, 2, 1, 1)
    );
    assert_eq!(
        (
            stats.entries,
            stats.capacity,
            stats.weight,
            stats.max_weight
        ),
        (2, 2, 16, Some(64))
    );
    assert_eq!(
        (stats.hit_ratio, stats.hits_per_entry, stats.fill_percent),
        (4.0 / 14.0, 2.0, 100.0)
    );
    assert_eq!(
        (stats.total_load_time, stats.mean_load_time),
        (Duration::from_millis(300), Duration::from_micros(37_500))
    );
    #[cfg(feature = "serde")]
    {
        // The serialized form: durations in milliseconds, no shared tier.
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["total_load_time_ms"], 300.0);
        assert_eq!(json["mean_load_time_ms"], 37.5);
        assert_eq!(json["inserts"], 7);
        assert!(json.get("l2").is_none());
        assert_eq!(json.as_object().unwrap().len(), 22, "{json}");
    }

    cache.reset_stats();
    let reset = cache.stats();
    assert_eq!(
        (
            reset.hits,
            reset.misses,
            reset.loads,
            reset.inserts,
            reset.total_load_time
        ),
        (0, 0, 0, 0, Duration::ZERO)
    );
    assert_eq!(reset.entries, 2, "reset keeps the entries");
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_expired_entries() {
    let cache = QueryCache::builder().build().unwrap();
    for i in 0..10_u64 {
        cache.insert(
            format!("k{i}"),
            i,
            if i < 4 { Ttl::VERY_SHORT } else { Ttl::LONG },
            &["tag"],
        );
    }
    let sweeper = cache.spawn_sweeper(Duration::from_secs(30));
    advance(Duration::from_secs(61)).await;
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.entry_count(), 6);
    assert_eq!(cache.stats().expirations, 4);
    drop(cache);
    advance(Duration::from_secs(30)).await;
    sweeper.await.unwrap(); // ends once the cache is gone
}

#[tokio::test]
async fn prewarm_loads_keys_and_reports_failures() {
    let cache = QueryCache::builder().build().unwrap();
    let mut jobs: Vec<PrewarmJob> = (0..5_u64)
        .map(|i| {
            PrewarmJob::new(
                format!("room-type:{i}"),
                Ttl::LONG,
                &["room-types"],
                move || async move { Ok::<_, DbError>(i) },
            )
        })
        .collect();
    jobs.push(PrewarmJob::new("broken", Ttl::LONG, &[], || async {
        Err::<u64, _>(DbError("no table"))
    }));
    let report = cache.prewarm(jobs, 2).await;
    assert_eq!(report.loaded, 5);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        (
            report.failed[0].key.as_str(),
            report.failed[0].error.as_str()
        ),
        ("broken", "no table")
    );
    assert_eq!(
        cache.get::<u64>("room-type:3").unwrap().as_deref(),
        Some(&3)
    );
    assert_eq!(cache.invalidate_tag("room-types"), 5);
}

/// Many tasks on two worker threads read, write and invalidate a small "database". Checks
/// that no read returns a version older than one whose invalidation had completed before
/// the read began, and that the bound holds throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_writes_and_invalidations_keep_the_invariants() {
    use std::sync::atomic::AtomicU64;

    const KEYS: usize = 32;
    const GROUPS: usize = 4;
    struct Db {
        versions: Vec<AtomicU64>,
        /// Highest version of each key whose invalidation has completed.
        published: Vec<AtomicU64>,
    }
    let db = Arc::new(Db {
        versions: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        published: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
    });
    let cache = QueryCache::builder()
        .max_entries(20)
        .shards(4)
        .build()
        .unwrap();
    let violations = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for worker in 0..8_usize {
        let (cache, db, violations) = (cache.clone(), db.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = (worker as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            for _ in 0..5_000 {
                let key = (next() % KEYS as u64) as usize;
                let group = key % GROUPS;
                if next() % 10 == 0 {
                    // A write: bump the version, invalidate, then publish.
                    if next() % 2 == 0 {
                        let version = db.versions[key].fetch_add(1, Ordering::SeqCst) + 1;
                        cache.invalidate(format!("k{key}"));
                        db.published[key].fetch_max(version, Ordering::SeqCst);
                    } else {
                        let members: Vec<usize> = (group..KEYS).step_by(GROUPS).collect();
                        let versions: Vec<u64> = members
                            .iter()
                            .map(|k| db.versions[*k].fetch_add(1, Ordering::SeqCst) + 1)
                            .collect();
                        cache.invalidate_tag(&format!("group:{group}"));
                        for (k, v) in members.iter().zip(versions) {
                            db.published[*k].fetch_max(v, Ordering::SeqCst);
                        }
                    }
                } else {
                    let floor = db.published[key].load(Ordering::SeqCst);
                    let loader_db = db.clone();
                    let value = cache
                        .with_cache(
                            format!("k{key}"),
                            Ttl::LONG,
                            &[&format!("group:{group}")],
                            move || async move {
                                let version = loader_db.versions[key].load(Ordering::SeqCst);
                                tokio::task::yield_now().await; // widen the race window
                                Ok::<_, Infallible>(version)
                            },
                        )
                        .await
                        .unwrap();
                    if *value < floor {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                }
                assert!(cache.entry_count() <= 20);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "a value older than a completed invalidation was served"
    );
    let stats = cache.stats();
    assert!(stats.entries <= 20);
    assert!(
        stats.hits > 0 && stats.invalidations > 0,
        "the test exercised hits and invalidations: {stats:?}"
    );
}
