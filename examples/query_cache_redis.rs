//! Two instances of a service sharing `query-cache` through Redis (feature `redis`): a
//! value loaded by one is a Redis hit for the other, and an invalidation on one reaches
//! the other's memory.
//!
//! `cargo run --example query_cache_redis [redis-url]` (default `redis://127.0.0.1:6379`).
//! Without a Redis there, both instances keep working alone, which the example shows too.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use query_cache::{Cacheable, QueryCache, RedisConfig, SharedCodec, Ttl};
use serde::{Deserialize, Serialize};

/// A public read model, shared between instances under a versioned schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Availability {
    room_type: u32,
    free_rooms: u32,
}

impl Cacheable for Availability {
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("example/availability", 1))
    }
}

/// One "server instance": its cache and how many database queries it ran.
struct Instance {
    name: &'static str,
    cache: QueryCache,
    queries: Arc<AtomicUsize>,
}

impl Instance {
    async fn availability(&self, room_type: u32, free_rooms: u32) -> anyhow::Result<u32> {
        let queries = Arc::clone(&self.queries);
        let value = self
            .cache
            .with_cache(
                format!("availability:{room_type}"),
                Ttl::VERY_SHORT,
                &[&format!("room-type:{room_type}")],
                move || async move {
                    queries.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await; // the query
                    Ok::<_, Infallible>(Availability {
                        room_type,
                        free_rooms,
                    })
                },
            )
            .await
            .with_context(|| format!("while reading availability on {}", self.name))?;
        Ok(value.free_rooms)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // A fixed prefix: reruns reuse the same few keys instead of leaving new ones behind.
    let config =
        RedisConfig::new(&url, "example:query-cache").context("while reading the Redis URL")?;
    let instance = |name| -> anyhow::Result<Instance> {
        Ok(Instance {
            name,
            cache: QueryCache::builder()
                .max_entries(10_000)
                .redis(config.clone())
                .build()
                .context("while building the cache")?,
            queries: Arc::default(),
        })
    };
    let (a, b) = (instance("A")?, instance("B")?);
    let connected = a.cache.wait_for_redis(Duration::from_secs(2)).await
        && b.cache.wait_for_redis(Duration::from_secs(2)).await;
    println!(
        "Redis at {}: {}",
        config.redacted_url(),
        if connected {
            "connected"
        } else {
            "unreachable, each instance works alone"
        }
    );

    println!("A reads room type 7: {} free", a.availability(7, 3).await?);
    let started = Instant::now();
    println!(
        "B reads room type 7: {} free in {:?} ({} queries on B: {})",
        b.availability(7, 99).await?,
        started.elapsed(),
        b.queries.load(Ordering::SeqCst),
        if connected {
            "a Redis hit"
        } else {
            "loaded itself"
        }
    );

    // A booking through A: invalidate the room type everywhere.
    let started = Instant::now();
    a.cache.invalidate_tag("room-type:7");
    if connected {
        a.cache.flush_invalidations(Duration::from_secs(1)).await;
        b.cache
            .wait_for_invalidation_messages(1, Duration::from_secs(1))
            .await;
        println!("the invalidation reached B after {:?}", started.elapsed());
    }
    println!(
        "B reads room type 7 again: {} free",
        b.availability(7, 2).await?
    );

    for instance in [&a, &b] {
        println!(
            "{} statistics: {}",
            instance.name,
            serde_json::to_string_pretty(&instance.cache.stats())?
        );
    }
    a.cache.invalidate_all();
    a.cache.flush_invalidations(Duration::from_secs(1)).await;
    Ok(())
}
