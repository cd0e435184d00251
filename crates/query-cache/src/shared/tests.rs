//! Lost invalidation messages, played by an instance that ignores the ones it receives
//! (a switch only unit tests have). Against the Redis at `HOTEL_TEST_REDIS_URL`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::{QueryCache, RedisConfig, Ttl};

const PATIENCE: Duration = Duration::from_secs(10);

/// A unique prefix, and its keys deleted at the end of the test.
struct Namespace {
    redis: db_connect::testing::RedisPrefix,
}

impl Namespace {
    fn new(url: String) -> Self {
        Namespace {
            redis: db_connect::testing::RedisPrefix::new(&url, "qc-unit"),
        }
    }

    fn config(&self) -> RedisConfig {
        RedisConfig::new(self.redis.url(), self.redis.prefix())
            .unwrap()
            .timeout(Duration::from_millis(250))
    }

    async fn instance(&self, l1_max_ttl: Duration) -> QueryCache {
        let cache = QueryCache::builder()
            .redis(self.config().l1_max_ttl(l1_max_ttl))
            .build()
            .unwrap();
        assert!(cache.wait_for_redis(PATIENCE).await);
        cache
    }

    fn values(&self) -> usize {
        self.redis.keys("v:*").len()
    }
}

/// Waits until `cache`'s invalidations so far are applied to Redis (not confirmed).
async fn applied_to_redis(cache: &QueryCache) {
    let state = &cache.shared_tier().expect("a Redis tier").state;
    let ticket = state.issued.load(Ordering::Acquire);
    let mut applied = state.applied.subscribe();
    tokio::time::timeout(PATIENCE, applied.wait_for(|applied| *applied >= ticket))
        .await
        .expect("applied in time")
        .expect("the writer runs");
}

fn deafen(cache: &QueryCache) {
    cache
        .shared_tier()
        .expect("a Redis tier")
        .state
        .deaf
        .store(true, Ordering::Relaxed);
}

/// Without the message, the other instance's load is stopped by Redis itself: the
/// generation it read before loading moved, so its write is refused, and L1 does not
/// keep what Redis refused.
#[tokio::test]
async fn a_lost_message_is_caught_by_the_generation_check_in_redis() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(url);
    let a = namespace.instance(Duration::from_secs(600)).await;
    let b = namespace.instance(Duration::from_secs(600)).await;
    deafen(&b);
    let (started, loader_started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
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
                    Ok::<_, Infallible>(101_u32)
                },
            )
            .await
        }
    });
    loader_started.await.unwrap();
    a.invalidate_tag("room-type:7");
    assert!(
        !a.flush_invalidations(Duration::from_millis(300)).await,
        "B lost the message: it never confirms"
    );
    release.send(()).unwrap();
    assert_eq!(*slow.await.unwrap().unwrap(), 101);

    let stats = b.stats();
    let l2 = stats.l2.unwrap();
    assert_eq!(
        (l2.stale_writes_refused, l2.writes, l2.messages_received),
        (1, 0, 0)
    );
    assert_eq!(stats.discarded_loads, 1);
    assert!(!b.contains_key("availability:7"));
    assert_eq!(namespace.values(), 0);
}

/// Without the message, an L1 copy outlives the invalidation, but never by more than
/// `l1_max_ttl`: the stated staleness bound.
#[tokio::test]
async fn a_lost_message_leaves_l1_stale_for_at_most_l1_max_ttl() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(url);
    let bound = Duration::from_secs(2);
    let a = namespace.instance(bound).await;
    let b = namespace.instance(bound).await;
    deafen(&b);
    let load = |cache: &QueryCache, value: u32| {
        let cache = cache.clone();
        async move {
            *cache
                .with_cache("rooms", Ttl::SHORT, &[], move || async move {
                    Ok::<_, Infallible>(value)
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(load(&a, 1).await, 1);
    assert_eq!(load(&b, 99).await, 1, "B reads A's value from Redis");
    assert_eq!(b.stats().l2.unwrap().staleness_bound_ms, 2_000);

    a.invalidate("rooms");
    // Not `flush_invalidations`: it would wait for B's confirmation, which never comes,
    // while the bound's clock runs.
    applied_to_redis(&a).await;
    assert_eq!(
        load(&b, 2).await,
        1,
        "B missed the message: its copy is stale"
    );

    // Redis is not touched while time is paused: only L1's clock moves.
    tokio::time::pause();
    tokio::time::advance(bound - Duration::from_millis(10)).await;
    assert!(b.contains_key("rooms"), "stale up to the bound");
    tokio::time::advance(Duration::from_millis(10)).await;
    assert!(!b.contains_key("rooms"), "never past it");
    tokio::time::resume();
    assert_eq!(
        load(&b, 2).await,
        2,
        "the next read finds Redis empty and loads"
    );
}

/// A tag's key set in Redis does not keep keys whose value is gone for ever: writes drop
/// them, so a tag that is never invalidated cannot grow without bound.
#[tokio::test]
async fn tag_sets_forget_keys_whose_value_is_gone() {
    let Some(url) = db_connect::testing::redis_url() else {
        return;
    };
    let namespace = Namespace::new(url);
    let cache = namespace.instance(Duration::from_secs(600)).await;
    let load = |key: &'static str| {
        let cache = cache.clone();
        async move {
            cache
                .with_cache(key, Ttl::SHORT, &["room-types"], || async {
                    Ok::<_, Infallible>(1_u32)
                })
                .await
                .unwrap();
        }
    };
    load("k1").await;
    cache.invalidate("k1");
    assert!(cache.flush_invalidations(PATIENCE).await);
    load("k2").await;

    let mut redis = redis::Client::open(namespace.redis.url())
        .and_then(|c| c.get_connection())
        .unwrap();
    let epoch: String = redis::cmd("GET")
        .arg(format!("{}:epoch", namespace.redis.prefix()))
        .query(&mut redis)
        .unwrap();
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!(
            "{}:tk:{epoch}:room-types",
            namespace.redis.prefix()
        ))
        .query(&mut redis)
        .unwrap();
    assert_eq!(members, ["k2"]);
}
