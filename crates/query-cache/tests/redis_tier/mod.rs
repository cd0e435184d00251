//! The shared Redis tier (feature `redis`) against a real Redis: the shared one at
//! `HOTEL_TEST_REDIS_URL` (default 127.0.0.1:6379) under a random key prefix per test,
//! and, for the outage test, a `redis-server` this test starts, kills and restarts itself.
//!
//! Without Redis these tests print a SKIP line and pass, unless `HOTEL_REQUIRE_SERVICES=1`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use query_cache::{Cacheable, L2Stats, QueryCache, RedisConfig, SharedCodec, Ttl};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Generous bound for anything that should take milliseconds: a failure, not a wait.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rooms {
    room_type: u32,
    free: Vec<u32>,
}

impl Cacheable for Rooms {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("query-cache-tests/rooms", 1))
    }
}

fn rooms(room_type: u32, free: &[u32]) -> Rooms {
    Rooms {
        room_type,
        free: free.to_vec(),
    }
}

/// A key namespace of its own in a Redis, emptied when the test ends (even on panic).
struct Namespace {
    redis: db_connect::testing::RedisPrefix,
}

impl Namespace {
    fn new(url: &str) -> Self {
        Namespace {
            redis: db_connect::testing::RedisPrefix::new(url, "qc-test"),
        }
    }

    fn config(&self) -> RedisConfig {
        RedisConfig::new(self.redis.url(), self.redis.prefix())
            .unwrap()
            .timeout(Duration::from_millis(250))
            .generation_retention(Duration::from_secs(600))
    }

    /// How many values this namespace holds in Redis.
    fn stored_values(&self) -> usize {
        self.redis.keys("v:*").len()
    }
}

async fn instance(config: RedisConfig) -> QueryCache {
    let cache = QueryCache::builder().redis(config).build().unwrap();
    assert!(cache.wait_for_redis(PATIENCE).await, "the tier connects");
    cache
}

/// Two instances (think: two server processes) on one Redis and one prefix.
async fn pair(
    namespace: &Namespace,
    configure: impl Fn(RedisConfig) -> RedisConfig,
) -> (QueryCache, QueryCache) {
    (
        instance(configure(namespace.config())).await,
        instance(configure(namespace.config())).await,
    )
}

fn l2(cache: &QueryCache) -> L2Stats {
    cache.stats().l2.expect("a Redis tier")
}

/// A loader that counts its runs.
fn loader<T: Send + 'static>(
    runs: &Arc<AtomicUsize>,
    value: T,
) -> impl FnOnce() -> std::future::Ready<Result<T, Infallible>> + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(value))
    }
}

/// A loader that must not run: the value has to come from a cache tier.
fn no_loader<T: Send + 'static>()
-> impl FnOnce() -> std::future::Ready<Result<T, Infallible>> + Send + 'static {
    || panic!("the loader ran, but the value should have come from a cache tier")
}

#[tokio::test]
async fn a_value_loaded_on_one_instance_is_an_l2_hit_on_another() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    let (a, b) = pair(&namespace, |c| c).await;
    let runs = Arc::new(AtomicUsize::new(0));

    let loaded = a
        .with_cache(
            "availability:7",
            Ttl::SHORT,
            &["room-type:7"],
            loader(&runs, rooms(7, &[101, 102])),
        )
        .await
        .unwrap();
    let shared = b
        .with_cache("availability:7", Ttl::SHORT, &["room-type:7"], no_loader())
        .await
        .unwrap();
    assert_eq!(shared, loaded);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A second read on B is an L1 hit.
    b.with_cache(
        "availability:7",
        Ttl::SHORT,
        &["room-type:7"],
        no_loader::<Rooms>(),
    )
    .await
    .unwrap();

    // Containers of shared types are shared too.
    let list = vec![rooms(1, &[1]), rooms(2, &[])];
    a.with_cache("all", Ttl::SHORT, &[], loader(&runs, list.clone()))
        .await
        .unwrap();
    assert_eq!(
        *b.with_cache("all", Ttl::SHORT, &[], no_loader::<Vec<Rooms>>())
            .await
            .unwrap(),
        list
    );

    let (sa, sb) = (a.stats(), b.stats());
    let (la, lb) = (l2(&a), l2(&b));
    assert_eq!(
        (sa.misses, sa.loads, la.misses, la.hits, la.writes),
        (2, 2, 2, 0, 2)
    );
    assert_eq!(
        (sb.misses, sb.hits, sb.loads, lb.hits, lb.misses, lb.writes),
        (2, 1, 0, 2, 0, 0)
    );
    assert!(la.connected && la.subscribed && lb.connected && lb.subscribed);
    assert_eq!(
        (la.errors, la.timeouts, lb.errors, lb.timeouts),
        (0, 0, 0, 0)
    );
    assert_eq!(
        la.staleness_bound_ms,
        RedisConfig::DEFAULT_L1_MAX_TTL.as_millis() as u64
    );
    assert_eq!(namespace.stored_values(), 2);
}

/// Loads `key` on A (loader) and on B (from Redis), so both L1s hold it.
async fn cached_on_both(a: &QueryCache, b: &QueryCache, key: &str, tags: &[&str], value: Rooms) {
    let runs = Arc::new(AtomicUsize::new(0));
    a.with_cache(key, Ttl::SHORT, tags, loader(&runs, value.clone()))
        .await
        .unwrap();
    assert_eq!(
        *b.with_cache(key, Ttl::SHORT, tags, no_loader::<Rooms>())
            .await
            .unwrap(),
        value
    );
    assert!(a.contains_key(key) && b.contains_key(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_by_key_tag_prefix_and_all_reaches_the_other_instance() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    // A long L1 cap, so that only the invalidation message can drop B's copies.
    let (a, b) = pair(&namespace, |c| c.l1_max_ttl(Duration::from_secs(600))).await;

    cached_on_both(&a, &b, "availability:1", &["room-type:1"], rooms(1, &[1])).await;
    cached_on_both(&a, &b, "availability:2", &["room-type:2"], rooms(2, &[2])).await;
    cached_on_both(&a, &b, "report:occupancy", &[], rooms(0, &[3])).await;
    cached_on_both(&a, &b, "report:revenue", &[], rooms(0, &[4])).await;
    cached_on_both(&a, &b, "room-types", &[], rooms(0, &[5])).await;

    // (kind, invalidation on A, keys it drops, keys it keeps)
    type Step<'a> = (
        &'a str,
        &'a dyn Fn(&QueryCache),
        &'a [&'a str],
        &'a [&'a str],
    );
    let steps: [Step; 4] = [
        (
            "key",
            &|c| {
                c.invalidate("availability:1");
            },
            &["availability:1"],
            &["availability:2"],
        ),
        (
            "tag",
            &|c| {
                c.invalidate_tag("room-type:2");
            },
            &["availability:2"],
            &["report:occupancy"],
        ),
        (
            "prefix",
            &|c| {
                c.invalidate_prefix("report:");
            },
            &["report:occupancy", "report:revenue"],
            &["room-types"],
        ),
        (
            "all",
            &|c| {
                c.invalidate_all();
            },
            &["room-types"],
            &[],
        ),
    ];
    for (n, (kind, invalidate, dropped, kept)) in steps.into_iter().enumerate() {
        let started = Instant::now();
        invalidate(&a);
        assert!(
            b.wait_for_invalidation_messages(n as u64 + 1, PATIENCE)
                .await,
            "B received the {kind} invalidation"
        );
        let took = started.elapsed();
        eprintln!("{kind} invalidation on A applied on B after {took:?}");
        for key in dropped {
            assert!(
                !a.contains_key(key) && !b.contains_key(key),
                "{key} dropped by the {kind} invalidation"
            );
            // Gone from Redis too: B loads it again.
            let runs = Arc::new(AtomicUsize::new(0));
            b.with_cache(*key, Ttl::SHORT, &[], loader(&runs, rooms(9, &[])))
                .await
                .unwrap();
            assert_eq!(
                runs.load(Ordering::SeqCst),
                1,
                "{key} reloaded after the {kind} invalidation"
            );
            b.invalidate(key);
        }
        for key in kept {
            assert!(b.contains_key(key), "{key} kept by the {kind} invalidation");
        }
        assert!(a.flush_invalidations(PATIENCE).await);
    }
    let (la, lb) = (l2(&a), l2(&b));
    assert_eq!((la.invalidations_sent, la.invalidations_pending), (4, 0));
    assert!((1..=4).contains(&la.messages_sent), "{la:?}");
    assert_eq!(lb.messages_received, la.messages_sent);
    // B's own invalidations (after each reload) reach A as well.
    assert!(b.flush_invalidations(PATIENCE).await);
    assert!(
        a.wait_for_invalidation_messages(l2(&b).messages_sent, PATIENCE)
            .await
    );
    // The replaced epoch's keys are deleted in the background.
    wait_until("Redis holds no value", || namespace.stored_values() == 0).await;
}

#[tokio::test]
async fn this_instance_never_reads_back_what_it_invalidated() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    let (a, _b) = pair(&namespace, |c| c).await;
    let runs = Arc::new(AtomicUsize::new(0));
    for round in 0..50_u32 {
        let value = rooms(round, &[round]);
        let got = a
            .with_cache("k", Ttl::SHORT, &["t"], loader(&runs, value.clone()))
            .await
            .unwrap();
        assert_eq!(
            *got, value,
            "round {round} loaded its own value, not the previous round's from Redis"
        );
        // Invalidation is queued for Redis; the next read must wait for it, not read the
        // old value back.
        if round % 2 == 0 {
            a.invalidate("k");
        } else {
            a.invalidate_tag("t");
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_slow_load_racing_an_invalidation_on_another_instance_stores_nothing() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    let (a, b) = pair(&namespace, |c| c.l1_max_ttl(Duration::from_secs(600))).await;
    let (started, loader_started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();

    // B misses in both tiers and starts loading: it reads the database before the write.
    let slow = tokio::spawn({
        let b = b.clone();
        async move {
            b.with_cache(
                "availability:7",
                Ttl::SHORT,
                &["room-type:7"],
                move || async move {
                    let _ = started.send(());
                    let _ = released.await;
                    Ok::<_, Infallible>(rooms(7, &[101, 102]))
                },
            )
            .await
        }
    });
    loader_started.await.unwrap();

    // Meanwhile a booking commits on A, which invalidates the room type everywhere.
    a.invalidate_tag("room-type:7");
    assert!(a.flush_invalidations(PATIENCE).await);
    assert!(b.wait_for_invalidation_messages(1, PATIENCE).await);

    // B's load finishes with what it read before the booking.
    release.send(()).unwrap();
    let stale = slow.await.unwrap().unwrap();
    assert_eq!(
        *stale,
        rooms(7, &[101, 102]),
        "the caller that asked before the write gets its load"
    );

    // Neither tier kept it.
    assert!(!b.contains_key("availability:7"));
    assert_eq!(namespace.stored_values(), 0);
    assert_eq!(b.stats().discarded_loads, 1);
    let runs = Arc::new(AtomicUsize::new(0));
    let fresh = a
        .with_cache(
            "availability:7",
            Ttl::SHORT,
            &["room-type:7"],
            loader(&runs, rooms(7, &[102])),
        )
        .await
        .unwrap();
    assert_eq!(
        (runs.load(Ordering::SeqCst), &*fresh),
        (1, &rooms(7, &[102]))
    );
    let via_b = b
        .with_cache(
            "availability:7",
            Ttl::SHORT,
            &["room-type:7"],
            no_loader::<Rooms>(),
        )
        .await
        .unwrap();
    assert_eq!(via_b, fresh);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RoomsV2 {
    room_type: u32,
    free: Vec<u32>,
    currency: String,
}

impl Cacheable for RoomsV2 {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("query-cache-tests/rooms", 2))
    }
}

/// Same schema name and version as `Rooms`, another shape: a developer forgot the bump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RoomsUnbumped {
    room_type: String,
    price: u64,
}

impl Cacheable for RoomsUnbumped {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("query-cache-tests/rooms", 1))
    }
}

#[tokio::test]
async fn another_schema_version_is_a_miss_never_a_wrong_value() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    // The old and the new release of a service, during a rolling deploy.
    let (old, new) = pair(&namespace, |c| c).await;
    let runs = Arc::new(AtomicUsize::new(0));
    old.with_cache("rooms", Ttl::SHORT, &[], loader(&runs, rooms(7, &[1])))
        .await
        .unwrap();

    let v2 = RoomsV2 {
        room_type: 7,
        free: vec![1],
        currency: "EUR".into(),
    };
    let got = new
        .with_cache("rooms", Ttl::SHORT, &[], loader(&runs, v2.clone()))
        .await
        .unwrap();
    assert_eq!(
        *got, v2,
        "the new release loads instead of misreading the old bytes"
    );
    let stats = l2(&new);
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.schema_mismatches,
            stats.writes
        ),
        (0, 1, 1, 1)
    );

    // Bytes of the same schema that no longer decode: a miss as well, counted apart.
    old.invalidate("other");
    assert!(old.flush_invalidations(PATIENCE).await);
    old.with_cache("other", Ttl::SHORT, &[], loader(&runs, rooms(8, &[])))
        .await
        .unwrap();
    let unbumped = RoomsUnbumped {
        room_type: "suite".into(),
        price: 100,
    };
    let got = new
        .with_cache("other", Ttl::SHORT, &[], loader(&runs, unbumped.clone()))
        .await
        .unwrap();
    assert_eq!(*got, unbumped);
    assert_eq!(l2(&new).codec_errors, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[derive(Debug, PartialEq)]
struct LocalOnly(u32);
impl Cacheable for LocalOnly {}

#[tokio::test]
async fn values_without_a_codec_stay_in_the_process() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    let (a, b) = pair(&namespace, |c| c).await;
    let runs = Arc::new(AtomicUsize::new(0));
    a.with_cache("local", Ttl::SHORT, &["t"], loader(&runs, LocalOnly(1)))
        .await
        .unwrap();
    b.with_cache("local", Ttl::SHORT, &["t"], loader(&runs, LocalOnly(2)))
        .await
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "each instance loads its own"
    );
    assert_eq!(
        *a.with_cache("local", Ttl::SHORT, &["t"], no_loader::<LocalOnly>())
            .await
            .unwrap(),
        LocalOnly(1)
    );
    assert_eq!((l2(&a).unshared_loads, l2(&a).misses), (1, 0));
    assert_eq!(namespace.stored_values(), 0);
    // Invalidation still reaches the other instance's L1.
    a.invalidate_tag("t");
    assert!(b.wait_for_invalidation_messages(1, PATIENCE).await);
    assert!(!b.contains_key("local"));
}

#[tokio::test]
async fn an_unreachable_redis_never_fails_a_request() {
    if db_connect::testing::redis_url().is_none() {
        return;
    }
    // A port nothing listens on.
    let port = db_connect::testing::free_port();
    let config = RedisConfig::new(&format!("redis://127.0.0.1:{port}"), "qc-test:unreachable")
        .unwrap()
        .timeout(Duration::from_millis(50));
    let cache = QueryCache::builder().redis(config).build().unwrap();
    assert!(!cache.wait_for_redis(Duration::from_millis(200)).await);
    let runs = Arc::new(AtomicUsize::new(0));
    for i in 0..5_u32 {
        let got = cache
            .with_cache(
                format!("k{i}"),
                Ttl::SHORT,
                &[],
                loader(&runs, rooms(i, &[])),
            )
            .await
            .unwrap();
        assert_eq!(*got, rooms(i, &[]));
    }
    cache.invalidate("k0");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    // L1 still answers.
    cache
        .with_cache("k1", Ttl::SHORT, &[], no_loader::<Rooms>())
        .await
        .unwrap();
    let stats = l2(&cache);
    assert!(
        stats.errors + stats.timeouts + stats.bypassed >= 5,
        "{stats:?}"
    );
    assert!(!stats.connected && !stats.subscribed);
    assert_eq!(stats.invalidations_pending, 1);
}

/// Captures this thread's tracing output (the test runs on a current-thread runtime, so
/// the tier's tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn redis_stopped_mid_run_then_restarted() {
    if db_connect::testing::redis_url().is_none() {
        return;
    }
    let logs = Logs::default();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_ansi(false)
            .finish(),
    );
    let Some(mut server) = db_connect::testing::RedisServer::start() else {
        return;
    };
    let namespace = Namespace::new(&server.url());
    let configure = |c: RedisConfig| {
        c.timeout(Duration::from_millis(50))
            .keepalive(Duration::from_millis(200))
            .l1_max_ttl(Duration::from_secs(600))
    };
    let (a, b) = pair(&namespace, configure).await;
    cached_on_both(&a, &b, "before", &[], rooms(1, &[1])).await;

    server.stop();
    wait_until("both subscriptions noticed", || {
        !l2(&a).subscribed && !l2(&b).subscribed
    })
    .await;

    // Requests keep succeeding, from the loader.
    let runs = Arc::new(AtomicUsize::new(0));
    for i in 0..20_u32 {
        for cache in [&a, &b] {
            let got = cache
                .with_cache(
                    format!("during:{i}"),
                    Ttl::SHORT,
                    &["t"],
                    loader(&runs, rooms(i, &[i])),
                )
                .await
                .unwrap();
            assert_eq!(*got, rooms(i, &[i]));
        }
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        40,
        "no tier to share through: each instance loads"
    );
    a.invalidate_tag("t");
    for cache in [&a, &b] {
        let stats = l2(cache);
        assert!(
            stats.errors + stats.timeouts >= 1,
            "failures are counted: {stats:?}"
        );
        assert!(
            stats.bypassed >= 1,
            "after a failure, requests skip Redis instead of each waiting: {stats:?}"
        );
        assert!(!stats.connected, "{stats:?}");
    }
    assert_eq!(l2(&a).invalidations_pending, 1);
    assert!(
        logs.text().contains("Redis cache tier"),
        "a warning is logged:\n{}",
        logs.text()
    );
    // L1 still serves what it holds.
    b.with_cache("before", Ttl::SHORT, &[], no_loader::<Rooms>())
        .await
        .unwrap();

    server.restart();
    assert!(
        a.wait_for_redis(PATIENCE).await && b.wait_for_redis(PATIENCE).await,
        "the tier reconnects by itself"
    );
    for cache in [&a, &b] {
        let stats = l2(cache);
        assert!(stats.reconnects >= 1 && stats.l1_clears >= 2, "{stats:?}");
        assert!(!cache.contains_key("before"), "L1 cleared on resubscribing");
    }
    assert!(
        a.flush_invalidations(PATIENCE).await,
        "the queued invalidation reaches Redis"
    );
    assert_eq!(l2(&a).invalidations_pending, 0);

    // Caching through Redis resumes.
    let writes = l2(&a).writes;
    a.with_cache("after", Ttl::SHORT, &[], loader(&runs, rooms(2, &[2])))
        .await
        .unwrap();
    assert_eq!(l2(&a).writes, writes + 1);
    assert_eq!(
        *b.with_cache("after", Ttl::SHORT, &[], no_loader::<Rooms>())
            .await
            .unwrap(),
        rooms(2, &[2])
    );
    assert!(
        logs.text().contains("subscription re-established"),
        "{}",
        logs.text()
    );
}

/// Many loads racing writes (a version bump, then an invalidation by key or tag, on either
/// instance): once everything has settled, neither instance nor Redis holds an old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_and_invalidations_on_two_instances_leave_nothing_stale() {
    use std::sync::atomic::AtomicU32;

    const KEYS: usize = 8;
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(&url);
    let (a, b) = pair(&namespace, |c| c.l1_max_ttl(Duration::from_secs(600))).await;
    let database: Arc<Vec<AtomicU32>> = Arc::new((0..KEYS).map(|_| AtomicU32::new(0)).collect());
    let read = |cache: QueryCache, database: Arc<Vec<AtomicU32>>, k: usize| async move {
        let loaded = Arc::clone(&database);
        cache
            .with_cache(
                format!("key:{k}"),
                Ttl::SHORT,
                &[&format!("tag:{k}")],
                move || async move {
                    let version = loaded[k].load(Ordering::SeqCst);
                    // Let writes land while this load "queries".
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Ok::<_, Infallible>(version)
                },
            )
            .await
            .map(|v| *v)
            .unwrap()
    };
    let workers: Vec<_> = (0..8_u64)
        .map(|w| {
            let (a, b, database) = (a.clone(), b.clone(), Arc::clone(&database));
            tokio::spawn(async move {
                // A seeded xorshift, so that workers meet on the same keys at random.
                let mut state =
                    0x9e37_79b9_7f4a_7c15_u64 ^ (w + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                for _ in 0..400 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let k = (state % KEYS as u64) as usize;
                    let cache = if (state >> 8) & 1 == 0 { &a } else { &b };
                    if (state >> 16).is_multiple_of(5) {
                        database[k].fetch_add(1, Ordering::SeqCst);
                        if (state >> 24).is_multiple_of(2) {
                            cache.invalidate_tag(&format!("tag:{k}"));
                        } else {
                            cache.invalidate(format!("key:{k}"));
                        }
                    } else {
                        read(cache.clone(), Arc::clone(&database), k).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(a.flush_invalidations(PATIENCE).await && b.flush_invalidations(PATIENCE).await);
    assert!(
        a.wait_for_invalidation_messages(l2(&b).messages_sent, PATIENCE)
            .await
    );
    assert!(
        b.wait_for_invalidation_messages(l2(&a).messages_sent, PATIENCE)
            .await
    );

    for k in 0..KEYS {
        let current = database[k].load(Ordering::SeqCst);
        for (name, cache) in [("A", &a), ("B", &b)] {
            assert_eq!(
                read(cache.clone(), Arc::clone(&database), k).await,
                current,
                "{name} serves an old version of key {k}"
            );
        }
    }
    let (la, lb) = (l2(&a), l2(&b));
    eprintln!(
        "hits A/B {}/{}, writes {}/{}, refused stale writes {}/{}, discarded loads {}/{}",
        la.hits,
        lb.hits,
        la.writes,
        lb.writes,
        la.stale_writes_refused,
        lb.stale_writes_refused,
        a.stats().discarded_loads,
        b.stats().discarded_loads
    );
    assert!(la.hits + lb.hits > 0 && la.writes + lb.writes > 0);
}
