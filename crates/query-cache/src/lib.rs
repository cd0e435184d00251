//! A concurrent in-memory cache for query results.
//!
//! `query-cache` sits between a service and its database: it answers repeated reads from
//! memory, makes concurrent misses share one query, and drops what a write made stale.
//! It knows nothing of the data it holds: keys are strings, tags are strings
//! (`room-type:7`, `availability`), values are any type that opts in with [`Cacheable`].
//!
//! # Main types
//!
//! - [`QueryCache`]: the cache handle (cheap to clone). Built with [`QueryCache::builder`].
//! - [`QueryCache::with_cache`]: get a value or load it (single flight, TTL, tags,
//!   optional stale-while-revalidate); [`QueryCache::with_cache_lazy`] makes the tags and
//!   the loader only on a miss, for entries whose tags cost more than a hit.
//! - [`Ttl`]: freshness tiers ([`Ttl::VERY_SHORT`] 1 min … [`Ttl::VERY_LONG`] 24 h) or any
//!   `Duration`, with an optional stale grace.
//! - [`Cacheable`]: the opt-in marker for cacheable types, with an optional weight and an
//!   optional [`SharedCodec`] (how the type crosses the shared Redis tier).
//! - [`CacheStats`]: a serializable statistics snapshot from [`QueryCache::stats`], with
//!   the shared tier's [`L2Stats`] when there is one.
//! - `RedisConfig` (feature `redis`): the shared Redis tier, given to
//!   `QueryCacheBuilder::redis`.
//! - [`PrewarmJob`] and [`QueryCache::prewarm`]: load a set of keys at start-up.
//! - [`Error`], [`LoadError`]: what can go wrong.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use query_cache::{Cacheable, QueryCache, Ttl};
//!
//! #[derive(Debug)]
//! struct Availability { room_type: u32, free_rooms: u32 }
//! impl Cacheable for Availability {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = QueryCache::builder().max_entries(10_000).build()?;
//! let queries = Arc::new(AtomicUsize::new(0));
//!
//! let load = |cache: QueryCache, queries: Arc<AtomicUsize>| async move {
//!     cache
//!         .with_cache("availability:7:2025-06-01", Ttl::VERY_SHORT, &["room-type:7", "availability"], move || async move {
//!             queries.fetch_add(1, Ordering::SeqCst); // stands in for the database query
//!             Ok::<_, Infallible>(Availability { room_type: 7, free_rooms: 3 })
//!         })
//!         .await
//! };
//!
//! let first = load(cache.clone(), queries.clone()).await?;
//! let second = load(cache.clone(), queries.clone()).await?; // a hit
//! assert!(Arc::ptr_eq(&first, &second));
//! assert_eq!(queries.load(Ordering::SeqCst), 1);
//!
//! // A booking for room type 7 was written: drop everything that depends on it.
//! assert_eq!(cache.invalidate_tag("room-type:7"), 1);
//! load(cache.clone(), queries.clone()).await?; // loads again
//! assert_eq!(queries.load(Ordering::SeqCst), 2);
//!
//! let stats = cache.stats();
//! assert_eq!((stats.hits, stats.misses, stats.loads), (1, 2, 2));
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! | Area | Promised | Not promised |
//! | --- | --- | --- |
//! | Freshness | An entry is never returned after its TTL (plus its stale-while-revalidate grace, if the call that stored it gave one). | Data is never fresher than the TTL allows: the cache does not watch the database. Writes must invalidate. |
//! | Invalidation | Once `invalidate`, `invalidate_tag`, `invalidate_prefix` or `invalidate_all` returns, no call returns a value loaded before it began for the keys it covers, and callers arriving later do not join a load that started before it. Tag invalidation is O(entries with that tag), never a scan. | Callers already waiting on a load when the invalidation runs still receive that load's value (they asked before the write finished). |
//! | No stale fill | A value whose key or tags were invalidated while its loader ran is handed to its callers but never stored. | — |
//! | Single flight | Concurrent misses on one key in one process run one loader; the others wait and share its value or error. A dropped or panicking leader does not wedge the key: a waiter loads again. | Across processes: with the Redis tier, a value one instance loaded is a Redis hit for the others, but two instances missing at the same moment both load. A key invalidated during a load gets a second, independent load for new callers. |
//! | Errors | Loader errors reach every waiter and are never cached. | — |
//! | Stale-while-revalidate | Inside the grace window at most one refresh per key runs at a time; callers get the stale value without waiting. On refresh failure the stale value is served until the window ends. | That the refresh succeeds; how often it is retried after a failure (a later request starts the next attempt). |
//! | Bounds | The entry count and (if set) the total weight never exceed their bounds: each shard enforces an exact share. | Perfect LRU across shards: order is exact within a shard only. A value heavier than one shard's weight share is never stored. With [`Admission::TinyLfu`] (the default) a new value, loaded or inserted, may be evicted early, when it leaves the admission window, in favour of more popular entries. |
//! | Types | Asking for a key with another type than it holds returns [`Error::TypeMismatch`]; nothing panics. Across the Redis tier, bytes of another type, schema version or envelope format are a miss ([`Error::SchemaMismatch`] is counted, never returned). | That a type changed without bumping its [`SharedCodec`] version fails to decode: most shape changes do (fields are named), a change of meaning alone does not. |
//! | Redis tier: Redis | Once this instance's invalidation is applied to Redis (`QueryCache::flush_invalidations` returns `true`), Redis holds no value for the covered keys loaded before the invalidation began, and no load that read Redis before it can store one: writes are refused if a generation they depend on moved (checked atomically in a Lua script). | That it is applied when `invalidate*` returns: it is queued and applied in order (measured below 1 ms), or retried until Redis answers. Until then other instances may read the old value from Redis; this instance never does. |
//! | Redis tier: other instances' L1 | `flush_invalidations` returns `true` only once every other instance the message reached confirmed that it applied it to its L1: after that, no instance's L1 returns a value loaded before the invalidation. Another instance drops its L1 copies when the message arrives (measured on the project machine over five runs of 1 000: p50 0.06–0.19 ms, p99 0.19–5.2 ms; see `docs/PERFORMANCE.md`). If messages were lost, every L1 entry still expires within `RedisConfig::l1_max_ttl` (default 5 s, reported as `staleness_bound_ms`), and L1 is cleared whenever the subscription is (re)established. | Synchronous invalidation: until the message arrives (or, if lost, up to `l1_max_ttl`) another instance may serve its L1 copy. |
//! | Redis tier: failures | A Redis error or timeout (every call has one, default 50 ms) never fails a call: it is counted, logged at most once per 10 s, and the call goes on from L1 and the loader. For 0.5 s after a failure, or until Redis answers again, L1 misses skip Redis instead of each waiting for a timeout. The tier and its subscription reconnect by themselves. | That values loaded while Redis is down are shared, or that an outage's invalidations reach Redis before the outage ends. |
//!
//! # Choosing a TTL
//!
//! From the original system's guidance: static data such as room types and hotel rules
//! for hours ([`Ttl::LONG`], [`Ttl::VERY_LONG`]); availability for one to five minutes
//! ([`Ttl::VERY_SHORT`], [`Ttl::SHORT`]), and invalidate it on every booking; reports for
//! fifteen minutes ([`Ttl::MEDIUM`]), possibly with a stale grace so that nobody waits
//! for a slow report query. Never cache tokens, passwords, OTPs or payment data (see
//! [`Cacheable`]).
//!
//! # Design in brief
//!
//! Keys are spread by hash over independently locked shards (by default the next power
//! of two at or above four times the core count, with at least
//! [`QueryCacheBuilder::MIN_SHARD_ENTRIES`] entries each). Each shard keeps its entries,
//! its statistics counters and its running loads behind one `parking_lot` mutex, so a
//! hit takes one uncontended lock, hashes the key once, clones an `Arc` and checks expiry
//! and tag generations without touching shared state (but the frequency sketch, updated
//! without a lock). With [`Admission::TinyLfu`] (the default) eviction is adaptive
//! W-TinyLFU, as in Caffeine: an LRU window, then probation and protected segments
//! guarded by a count-min frequency sketch; the sketch, the window's size (moved by
//! *shadow hits*, misses on keys that just left the window or main) and the clocks that
//! say which departures are recent are kept for the whole cache, so the hit ratio does
//! not depend on the shard count. While those shadow hits say the popular keys have changed,
//! a key asked for again soon after it lost its duel (each shard keeps a ghost of the keys
//! it rejected) enters main without one. Every path that stores a value goes through it. Tags
//! are generation counters: invalidating one is a counter bump plus the removal of the
//! entries recorded under it.
//!
//! # Modules
//!
//! Each module depends only on the ones below it (no circle):
//!
//! | module | what it is | uses |
//! | --- | --- | --- |
//! | `cache` | [`QueryCache`], the public operations | `load`, `core`, `shared` |
//! | `prewarm`, `metrics` | [`QueryCache::prewarm`], the Prometheus collector | `cache` |
//! | `builder` | [`QueryCacheBuilder`] | `core`, `cache` |
//! | `load` | leading a load: shared tier, loader, store, answering the waiters | `core`, `shared` |
//! | `core` | the state: shards, tags, counters, bounds; every operation without I/O | `shard`, `policy`, `tags` |
//! | `shard` | one shard: its entries, flights and counters under one lock | `policy`, `flights`, `entry` |
//! | `policy` | eviction and admission behind the `Policy` trait: LRU, W-TinyLFU, sketch, hill climber | `entry` |
//! | `flights` | single-flight bookkeeping of a shard | `tags`, `entry` |
//! | `shared` | the Redis tier; reaches L1 only through its `LocalCache` trait | `codec`, `stats` |
//! | `entry`, `tags`, `stats`, `codec`, `cacheable`, `key`, `ttl`, `error` | values and their types | — |
//!
//! To change eviction, read `policy` (its trait and its two implementations): nothing
//! else decides which entry leaves.
//!
//! # Time
//!
//! Expiry uses [`tokio::time::Instant`], so tests can drive it with
//! `#[tokio::test(start_paused = true)]` and `tokio::time::advance`. Reading that clock
//! is about a fifth of the cost of a hit (see `docs/PERFORMANCE.md`); it is read once
//! per lookup.
//!
//! # The shared Redis tier
//!
//! With the `redis` feature, `QueryCacheBuilder::redis` puts Redis (L2) behind the
//! in-process cache (L1), for several instances of a service that must share what they
//! load and see each other's invalidations:
//!
//! - **Reads**: an L1 miss reads Redis before the loader runs (one round trip, a Lua
//!   script that also returns the generations the key depends on); a Redis hit fills L1.
//!   The L1 hit path is unchanged. Single flight stays per process.
//! - **Loads** fill both tiers: Redis with the entry's TTL (`SET PX`), through a script
//!   that refuses the write if the key's, a tag's or the namespace's generation moved
//!   since the read, and L1 only if Redis did not refuse.
//! - **Invalidations** (`invalidate`, `invalidate_tag`, `invalidate_prefix`,
//!   `invalidate_all`) apply to L1 at once and are queued for a background task that, in
//!   one script per batch, bumps the generations, deletes the covered values (a tag's
//!   keys come from a Redis set, a prefix is scanned inside Redis, "all" switches to a new
//!   epoch) and publishes them on `{prefix}:invalidations`; every other instance applies
//!   them to its L1. This instance waits for its own queued invalidations before it reads
//!   Redis, so it never reads back what it invalidated.
//! - **Lost messages**: L1 is cleared whenever the subscription is (re)established, and
//!   while the tier is configured every L1 entry lives at most
//!   `RedisConfig::l1_max_ttl`: that is the staleness
//!   bound, reported as [`L2Stats::staleness_bound_ms`].
//! - **Failures**: see the guarantees above; [`L2Stats`] counts hits, misses, errors,
//!   timeouts, writes, refused stale writes, messages sent and received, reconnects and
//!   the connection state.
//! - **Values** cross Redis only if their type opts in with [`Cacheable::shared_codec`]:
//!   MessagePack with named fields in an envelope carrying a schema fingerprint, so that
//!   another type, schema version or format is a miss and never a wrong value
//!   ([`SharedCodec`]). Other types stay in L1 (and are counted in
//!   [`L2Stats::unshared_loads`]).
//!
//! Limits: keys are built inside the scripts, so Redis Cluster is not supported (a
//! single Redis, or a primary with replicas and Sentinel, is); prefix invalidation scans
//! the Redis database's keys inside one script, which blocks Redis for as long (prefer
//! tags, or give the cache a database of its own);
//! [`QueryCache::get`] and [`QueryCache::insert`] are L1 only (`insert` also invalidates
//! the key in Redis and in the other instances, so none keeps serving the value it
//! replaces).
//!
//! ```
//! # #[cfg(feature = "redis")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use query_cache::{Cacheable, QueryCache, RedisConfig, SharedCodec, Ttl};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Availability { room_type: u32, free_rooms: u32 }
//!
//! impl Cacheable for Availability {
//!     fn shared_codec() -> Option<SharedCodec<Self>> {
//!         Some(SharedCodec::msgpack("example/availability", 1))
//!     }
//! }
//!
//! # let prefix = format!("doc-example:{}", std::process::id());
//! let redis = RedisConfig::new("redis://127.0.0.1:6379", &prefix)?;
//! // Two instances of a service (two processes in real life) on one Redis and prefix.
//! let a = QueryCache::builder().redis(redis.clone()).build()?;
//! let b = QueryCache::builder().redis(redis).build()?;
//! if !(a.wait_for_redis(Duration::from_secs(1)).await && b.wait_for_redis(Duration::from_secs(1)).await) {
//!     println!("no Redis: each instance works alone, from its memory and its loader");
//!     return Ok(());
//! }
//! let load = |free_rooms| move || async move {
//!     Ok::<_, Infallible>(Availability { room_type: 7, free_rooms })
//! };
//! a.with_cache("availability:7", Ttl::VERY_SHORT, &["room-type:7"], load(3)).await?;
//! // B misses in its memory and finds A's value in Redis: its loader does not run.
//! let shared = b.with_cache("availability:7", Ttl::VERY_SHORT, &["room-type:7"], load(99)).await?;
//! assert_eq!(shared.free_rooms, 3);
//!
//! // A booking through A: the room type is invalidated in Redis, then in B.
//! a.invalidate_tag("room-type:7");
//! assert!(a.flush_invalidations(Duration::from_secs(1)).await);
//! assert!(b.wait_for_invalidation_messages(1, Duration::from_secs(1)).await);
//! assert!(!b.contains_key("availability:7"));
//!
//! let l2 = b.stats().l2.expect("B has a Redis tier");
//! assert_eq!((l2.hits, l2.messages_received), (1, 1));
//! # let mut redis = redis::Client::open("redis://127.0.0.1:6379")?.get_connection()?;
//! # let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut redis)?;
//! # let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut redis)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis"))]
//! # fn main() {}
//! ```
//!
//! # Feature flags
//!
//! None is on by default: the in-process cache alone compiles in under 30 crates.
//!
//! - `serde`: `serde::Serialize` for [`CacheStats`], [`L2Stats`], [`PrewarmReport`] and
//!   [`CacheKey`].
//! - `msgpack` (implies `serde`): `SharedCodec::msgpack` and the shared codecs of the
//!   standard types. A library enables it to opt its types in to the shared tier
//!   ([`Cacheable::shared_codec`]) without choosing a Redis tier for its users:
//!   [`SharedCodec`] and `shared_codec` exist either way.
//! - `redis` (implies `msgpack`): the shared Redis tier (`RedisConfig`,
//!   `QueryCacheBuilder::redis`, `QueryCache::{wait_for_redis,
//!   wait_for_invalidation_messages}`). [`QueryCache::flush_invalidations`] exists either
//!   way (without a tier it returns at once), so a library can wait after its writes
//!   without knowing which cache its user built.
//! - `prometheus`: `QueryCache::metrics`, a `prometheus-client` collector of the
//!   statistics.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod cacheable;
mod codec;
mod core;
mod entry;
mod error;
mod flights;
mod key;
mod load;
#[cfg(feature = "prometheus")]
mod metrics;
mod policy;
mod prewarm;
mod shard;
#[cfg(feature = "redis")]
mod shared;
mod stats;
mod tags;
mod ttl;

pub use builder::{Admission, QueryCacheBuilder};
pub use cache::QueryCache;
pub use cacheable::Cacheable;
pub use codec::SharedCodec;
pub use error::{Error, LoadError, Result};
pub use key::CacheKey;
#[cfg(feature = "prometheus")]
pub use metrics::CacheMetrics;
pub use prewarm::{PrewarmFailure, PrewarmJob, PrewarmReport};
#[cfg(feature = "redis")]
pub use shared::RedisConfig;
pub use stats::{CacheStats, L2Stats};
pub use ttl::Ttl;
