//! Caching a slow query with `query-cache`: single flight, invalidation by tag, and the
//! statistics.
//!
//! `cargo run --example query_cache`
//!
//! The "database" is a `tokio::time::sleep` of 200 ms standing in for a slow query; this
//! example is about the cache, not the database.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use query_cache::{Cacheable, PrewarmJob, QueryCache, Ttl};

/// A public read model: safe to cache (no tokens, passwords or payment data).
#[derive(Debug, Clone)]
struct Availability {
    room_type: u32,
    free_rooms: u32,
}

impl Cacheable for Availability {}

/// The stand-in database: counts its queries so that the example can show them.
#[derive(Clone, Default)]
struct Database {
    queries: Arc<AtomicUsize>,
    /// Free rooms per room type, changed by "bookings".
    booked: Arc<AtomicUsize>,
}

impl Database {
    async fn availability(&self, room_type: u32) -> Result<Availability, std::io::Error> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let booked = u32::try_from(self.booked.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        Ok(Availability {
            room_type,
            free_rooms: 10_u32.saturating_sub(booked),
        })
    }

    fn book(&self) {
        self.booked.fetch_add(1, Ordering::SeqCst);
    }
}

/// The cached read: one key per query, tagged with what invalidates it.
async fn cached_availability(
    cache: &QueryCache,
    db: &Database,
    room_type: u32,
) -> anyhow::Result<Arc<Availability>> {
    let key = format!("availability:{room_type}:2025-06-01");
    let tag = format!("room-type:{room_type}");
    let db = db.clone();
    let value = cache
        .with_cache(
            &key,
            Ttl::SHORT,
            &[&tag, "availability"],
            move || async move { db.availability(room_type).await },
        )
        .await
        .with_context(|| format!("while loading {key}"))?;
    Ok(value)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cache = QueryCache::builder()
        .max_entries(1_000)
        .build()
        .context("while building the cache")?;
    let db = Database::default();

    // Pre-warm: load room type 1 before "traffic" arrives.
    let warm_db = db.clone();
    let report = cache
        .prewarm(
            [PrewarmJob::new(
                "availability:1:2025-06-01",
                Ttl::SHORT,
                &["room-type:1", "availability"],
                move || async move { warm_db.availability(1).await },
            )],
            4,
        )
        .await;
    println!(
        "pre-warmed {} key(s), {} failed",
        report.loaded,
        report.failed.len()
    );

    // 1. Cold miss vs. hit.
    let started = Instant::now();
    let first = cached_availability(&cache, &db, 7).await?;
    println!("miss: {:?} in {:?}", first, started.elapsed());
    let started = Instant::now();
    let second = cached_availability(&cache, &db, 7).await?;
    println!("hit:  {:?} in {:?}", second, started.elapsed());

    // 2. Single flight: 50 concurrent requests for a key nobody has loaded yet.
    let queries_before = db.queries.load(Ordering::SeqCst);
    let started = Instant::now();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { cached_availability(&cache, &db, 8).await })
        })
        .collect();
    for request in requests {
        request.await.context("while joining a request")??;
    }
    println!(
        "single flight: 50 concurrent callers -> {} database query in {:?}",
        db.queries.load(Ordering::SeqCst) - queries_before,
        started.elapsed()
    );

    // 3. A booking changes room type 7: invalidate by tag, the next read sees it.
    db.book();
    let removed = cache.invalidate_tag("room-type:7");
    println!("booking for room type 7: invalidated {removed} entry");
    let fresh = cached_availability(&cache, &db, 7).await?;
    println!(
        "after invalidation: room type {} has {} free rooms (was {})",
        fresh.room_type, fresh.free_rooms, first.free_rooms
    );
    let still_cached = cached_availability(&cache, &db, 8).await?;
    println!(
        "room type 8 untouched: {} free rooms, still cached",
        still_cached.free_rooms
    );

    // 4. Statistics, as the server would expose them.
    println!(
        "database queries in total: {}",
        db.queries.load(Ordering::SeqCst)
    );
    let stats = cache.stats();
    println!(
        "{}",
        serde_json::to_string_pretty(&stats).context("while serializing the statistics")?
    );
    Ok(())
}
