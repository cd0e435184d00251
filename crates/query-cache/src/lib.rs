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
//!   optional stale-while-revalidate).
//! - [`Ttl`]: freshness tiers ([`Ttl::VERY_SHORT`] 1 min … [`Ttl::VERY_LONG`] 24 h) or any
//!   `Duration`, with an optional stale grace.
//! - [`Cacheable`]: the opt-in marker for cacheable types, with an optional weight.
//! - [`CacheStats`]: a serializable statistics snapshot from [`QueryCache::stats`].
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
//! | Single flight | Concurrent misses on one key in one process run one loader; the others wait and share its value or error. A dropped or panicking leader does not wedge the key: a waiter loads again. | Across processes (that is the later Redis tier's job). A key invalidated during a load gets a second, independent load for new callers. |
//! | Errors | Loader errors reach every waiter and are never cached. | — |
//! | Stale-while-revalidate | Inside the grace window at most one refresh per key runs at a time; callers get the stale value without waiting. On refresh failure the stale value is served until the window ends. | That the refresh succeeds; how often it is retried after a failure (a later request starts the next attempt). |
//! | Bounds | The entry count and (if set) the total weight never exceed their bounds: each shard enforces an exact share. | Perfect LRU across shards: order is exact within a shard only. A value heavier than one shard's weight share is never stored. With [`Admission::TinyLfu`] (the default) a new value may be evicted early, when it leaves the small admission window, in favour of more popular entries. |
//! | Types | Asking for a key with another type than it holds returns [`Error::TypeMismatch`]; nothing panics. | — |
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
//! of two at or above four times the core count). Each shard is an [`lru`] list behind a
//! `parking_lot` mutex, holding the shard's statistics counters and its running loads, so
//! a hit takes one uncontended lock, clones an `Arc` and checks expiry and tag
//! generations without touching shared state. With [`Admission::TinyLfu`] each shard is
//! a W-TinyLFU cache (a 1 % LRU window in front of the main LRU, guarded by a count-min
//! frequency sketch). Tags are generation counters: invalidating one is a counter bump
//! plus the removal of the entries recorded under it.
//!
//! # Time
//!
//! Expiry uses [`tokio::time::Instant`], so tests can drive it with
//! `#[tokio::test(start_paused = true)]` and `tokio::time::advance`. Reading that clock
//! is about a fifth of the cost of a hit (see `docs/PERFORMANCE.md`); it is read once
//! per lookup.
//!
//! # Later: a shared L2 tier
//!
//! A Redis tier behind this in-process cache is planned. The design leaves room for it:
//! tag invalidation is a generation bump that an external source could drive
//! (cross-instance invalidation), loads already run through one place per key, and
//! values opt in through [`Cacheable`], which can grow a serialization hook.
//!
//! # Feature flags
//!
//! None.

mod builder;
mod cache;
mod cacheable;
mod codec;
mod error;
mod flight;
mod key;
mod prewarm;
mod shard;
#[cfg(feature = "redis")]
mod shared;
mod sketch;
mod stats;
mod tags;
mod ttl;

pub use builder::{Admission, QueryCacheBuilder};
pub use cache::QueryCache;
pub use cacheable::Cacheable;
pub use codec::SharedCodec;
pub use error::{Error, LoadError, Result};
pub use key::CacheKey;
pub use prewarm::{PrewarmFailure, PrewarmJob, PrewarmReport};
#[cfg(feature = "redis")]
pub use shared::RedisConfig;
pub use stats::{CacheStats, L2Stats};
pub use ttl::Ttl;
