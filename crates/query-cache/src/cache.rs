//! The cache handle: the public operations, built on [`Core`] (the state) and
//! [`load`](crate::load) (leading a load), with the shared tier beside them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::builder::QueryCacheBuilder;
use crate::core::{Begin, Core, CoreConfig};
use crate::flights::Ticket;
use crate::load::{Tier, downcast, from_outcome, lead};
use crate::shard::Store;
use crate::stats::{self, CacheStats};
use crate::{CacheKey, Cacheable, LoadError, Result, Ttl};

/// A concurrent, bounded, in-memory cache of query results with single-flight loads,
/// TTLs, tag invalidation and statistics.
///
/// `QueryCache` is a cheap handle (`Clone` shares the same cache): build one at start-up
/// and hand clones to whatever needs it. See the [crate documentation](crate) for the
/// guarantees it gives.
#[derive(Clone)]
pub struct QueryCache {
    core: Arc<Core>,
    /// Dropped with the last handle, which stops the tier's tasks.
    #[cfg(feature = "redis")]
    tier: Option<Arc<crate::shared::SharedTier>>,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("shards", &self.core.shard_count())
            .field("max_entries", &self.core.capacity())
            .field("max_weight", &self.core.max_weight)
            .finish_non_exhaustive()
    }
}

/// The tier's view of L1: the other instances' invalidations, applied here.
#[cfg(feature = "redis")]
impl crate::shared::LocalCache for Core {
    fn invalidate_key(&self, key: &str) {
        Core::invalidate_key(self, key);
    }

    fn invalidate_tag(&self, tag: &str) {
        Core::invalidate_tag(self, tag);
    }

    fn invalidate_prefix(&self, prefix: &str) {
        Core::invalidate_prefix(self, prefix);
    }

    fn clear(&self) -> usize {
        Core::clear(self)
    }
}

impl QueryCache {
    /// A builder to configure bounds, shards and admission.
    pub fn builder() -> QueryCacheBuilder {
        QueryCacheBuilder::default()
    }

    pub(crate) fn new(config: CoreConfig) -> Self {
        QueryCache {
            core: Arc::new(Core::new(config)),
            #[cfg(feature = "redis")]
            tier: None,
        }
    }

    /// A cache with a shared tier; needs a tokio runtime (the tier's tasks start now).
    #[cfg(feature = "redis")]
    pub(crate) fn with_tier(config: CoreConfig, redis: &crate::RedisConfig) -> Result<Self> {
        let core = Arc::new(Core::new(config));
        let local: Weak<dyn crate::shared::LocalCache> = Arc::downgrade(&core) as Weak<Core>;
        let tier = crate::shared::SharedTier::start(redis, local).map_err(|error| {
            crate::Error::InvalidRedisUrl {
                url: redis.redacted_url().to_owned(),
                reason: error.to_string(),
            }
        })?;
        Ok(QueryCache {
            core,
            tier: Some(Arc::new(tier)),
        })
    }

    #[inline]
    fn tier(&self) -> Tier<'_> {
        #[cfg(feature = "redis")]
        return self.tier.as_deref();
        #[cfg(not(feature = "redis"))]
        None
    }

    /// Queues an invalidation for the shared tier, if there is one.
    #[cfg(feature = "redis")]
    fn share(&self, invalidation: impl FnOnce() -> crate::shared::Invalidation) {
        if let Some(tier) = &self.tier {
            tier.enqueue(invalidation());
        }
    }

    /// Returns the cached value for `key`, or runs `loader`, caches its `Ok` value for
    /// `ttl` under `tags`, and returns it.
    ///
    /// - **Hit**: the shared value, without running `loader`.
    /// - **Miss**: if a load for `key` is already running, waits for it (single flight)
    ///   instead of starting another; otherwise runs `loader` here.
    /// - **Stale** (expired, but inside the grace of a
    ///   [`Ttl::stale_while_revalidate`]): returns the stale value at once and, unless one
    ///   is already running, starts one background refresh with `loader` (`tokio::spawn`).
    ///
    /// With a shared Redis tier (feature `redis`), the leader of a miss reads Redis before
    /// running `loader` (a hit answers without it), and writes the loaded value there
    /// unless something it depends on was invalidated meanwhile, by any instance. Redis
    /// failures never surface here: the call goes on from the loader.
    ///
    /// A loader error is returned to the caller and every waiter, and is not cached. A
    /// value whose key or tags were invalidated while `loader` ran is returned but not
    /// stored. If this call is dropped or `loader` panics, waiting callers are not stuck:
    /// one of them runs its own loader.
    ///
    /// `loader` is `'static + Send` because a stale-while-revalidate refresh outlives the
    /// call: move clones of what it needs (a connection pool handle) into it.
    ///
    /// # Errors
    ///
    /// - [`LoadError::Loader`] with the loader's error (shared by all waiters);
    /// - [`LoadError::Cache`] with [`Error::TypeMismatch`](crate::Error::TypeMismatch) if
    ///   `key` holds, or is being loaded as, another type than `T` (or another error type
    ///   than `E`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use query_cache::{Cacheable, QueryCache, Ttl};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct RoomType { id: u32, name: String }
    /// impl Cacheable for RoomType {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = QueryCache::builder().max_entries(1_000).build()?;
    /// let room = cache
    ///     .with_cache("room-type:7", Ttl::LONG, &["room-type:7"], || async {
    ///         // the database query would go here
    ///         Ok::<_, Infallible>(RoomType { id: 7, name: "Deluxe".into() })
    ///     })
    ///     .await?;
    /// assert_eq!(room.name, "Deluxe");
    ///
    /// // A second call is a hit: its loader never runs.
    /// let again = cache
    ///     .with_cache("room-type:7", Ttl::LONG, &["room-type:7"], || async {
    ///         Err::<RoomType, _>(std::io::Error::other("never called"))
    ///     })
    ///     .await?;
    /// assert_eq!(again, room);
    /// assert_eq!(cache.stats().hits, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_cache<T, E, F, Fut>(
        &self,
        key: impl AsRef<str>,
        ttl: impl Into<Ttl>,
        tags: &[&str],
        loader: F,
    ) -> Result<Arc<T>, LoadError<E>>
    where
        T: Cacheable,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let key = key.as_ref();
        let ttl = ttl.into();
        let hash = self.core.hash(key);
        let mut first_attempt = true;
        loop {
            match self.core.begin::<T>(key, hash, tags, first_attempt) {
                Begin::Hit(value, found) => return Ok(downcast(value, found, key)?),
                Begin::Stale {
                    value,
                    type_name,
                    refresh,
                } => {
                    if let Some(ticket) = refresh {
                        self.spawn_refresh(ticket, ttl, tags, loader);
                    }
                    return Ok(downcast(value, type_name, key)?);
                }
                Begin::Join(mut outcome) => {
                    self.core.loads.joins.fetch_add(1, Ordering::Relaxed);
                    let finished = Box::pin(outcome.wait_for(Option::is_some))
                        .await
                        .map(|o| o.clone());
                    if let Ok(Some(outcome)) = finished {
                        return from_outcome(key, outcome);
                    }
                    // The leader was dropped or panicked: look again, maybe lead.
                    first_attempt = false;
                }
                Begin::Lead(ticket) => {
                    // Boxed so that the loader's future does not inflate the state of
                    // every `with_cache` call, most of which are hits.
                    return Box::pin(lead(&self.core, self.tier(), ticket, ttl, tags, loader))
                        .await;
                }
            }
        }
    }

    /// [`with_cache`](Self::with_cache), with what only a miss needs made by `miss`: the
    /// entry's tags and its loader. A fresh hit answers without calling it. For entries whose
    /// tags cost more than the hit itself (one tag per night of a date range, each a formatted
    /// date) or whose loader holds clones of handles (a connection pool), which every hit
    /// would otherwise make and throw away.
    ///
    /// # Errors
    ///
    /// As [`with_cache`](Self::with_cache).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use query_cache::{Cacheable, QueryCache, Ttl};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Free { rooms: u32 }
    /// impl Cacheable for Free {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = QueryCache::builder().max_entries(1_000).build()?;
    /// let free = cache
    ///     .with_cache_lazy("free:2026-12-01", Ttl::LONG, || {
    ///         let tags = vec!["night:2026-12-01".to_owned()];
    ///         (tags, || async { Ok::<_, Infallible>(Free { rooms: 5 }) })
    ///     })
    ///     .await?;
    /// assert_eq!(free.rooms, 5);
    ///
    /// // A hit calls neither `miss` nor a loader.
    /// let again = cache
    ///     .with_cache_lazy("free:2026-12-01", Ttl::LONG, || -> (Vec<String>, fn() -> std::future::Ready<Result<Free, Infallible>>) {
    ///         unreachable!("a hit needs no tags and no loader")
    ///     })
    ///     .await?;
    /// assert_eq!(again, free);
    /// assert_eq!(cache.stats().hits, 1);
    ///
    /// // The tags made on the miss are the entry's.
    /// cache.invalidate_tags(&["night:2026-12-01"]);
    /// assert!(cache.get::<Free>("free:2026-12-01")?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_cache_lazy<T, E, F, Fut, M>(
        &self,
        key: impl AsRef<str>,
        ttl: impl Into<Ttl>,
        miss: M,
    ) -> Result<Arc<T>, LoadError<E>>
    where
        T: Cacheable,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        M: FnOnce() -> (Vec<String>, F),
    {
        let key = key.as_ref();
        if let Some((value, found)) = self.core.fresh(key, self.core.hash(key)) {
            return Ok(downcast(value, found, key)?);
        }
        let (tags, loader) = miss();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.with_cache(key, ttl, &tags, loader).await
    }

    /// Runs a stale-while-revalidate refresh as a task of its own.
    fn spawn_refresh<T, E, F, Fut>(&self, ticket: Ticket, ttl: Ttl, tags: &[&str], loader: F)
    where
        T: Cacheable,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to refresh on: serve the stale value and let the entry run out.
            self.core
                .end_flight(ticket.key.as_str(), ticket.hash, ticket.id);
            tracing::warn!(key = %ticket.key, "stale-while-revalidate refresh skipped: no tokio runtime");
            return;
        };
        let cache = self.clone();
        // Only the shared tier needs the names; L1 works from the flight's stamps.
        let tags: Vec<String> = if cache.tier().is_some() {
            tags.iter().map(|tag| (*tag).to_owned()).collect()
        } else {
            Vec::new()
        };
        runtime.spawn(async move {
            let key = ticket.key.clone();
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let refreshed = lead::<T, E, F, Fut>(&cache.core, cache.tier(), ticket, ttl, &tags, loader).await;
            if refreshed.is_err() {
                tracing::warn!(key = %key, "stale-while-revalidate refresh failed; the stale value is served until its grace ends");
            }
        });
    }

    /// The value cached for `key` if it is present, fresh and of type `T`. Counts a hit or
    /// a miss. A stale value (inside a stale-while-revalidate grace) is not returned:
    /// `get` has no loader to refresh it with.
    /// It reads this process's cache (L1) only, never Redis.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if `key` holds another type.
    pub fn get<T: Cacheable>(&self, key: impl AsRef<str>) -> Result<Option<Arc<T>>> {
        let key = key.as_ref();
        match self.core.get(key, self.core.hash(key)) {
            Some((value, found)) => downcast(value, found, key).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` for `ttl` with `tags`, replacing any entry and
    /// superseding any load running for `key` (its value will not be stored). Returns
    /// whether the value was stored: it is not if it alone exceeds a shard's weight
    /// budget.
    ///
    /// The value goes through the same eviction policy as a loaded one: with
    /// [`Admission::TinyLfu`](crate::Admission::TinyLfu) a new key enters the admission
    /// window and stays only if it proves popular, so code that uses [`get`](Self::get)
    /// and `insert` gets the same hit ratio as code that uses
    /// [`with_cache`](Self::with_cache). A key's popularity is counted by lookups
    /// (`get`, `with_cache`), not by `insert`.
    ///
    /// With a shared Redis tier the value is stored in this process only (for at most
    /// `l1_max_ttl`), and the key is invalidated in Redis and in the other instances, so
    /// that none of them keeps serving the value it replaces.
    ///
    /// # Examples
    ///
    /// ```
    /// use query_cache::{QueryCache, Ttl};
    ///
    /// let cache = QueryCache::builder().build()?;
    /// assert!(cache.insert("rules:check-in", String::from("15:00"), Ttl::VERY_LONG, &["rules"]));
    /// assert_eq!(cache.get::<String>("rules:check-in")?.as_deref().map(String::as_str), Some("15:00"));
    /// # Ok::<(), query_cache::Error>(())
    /// ```
    pub fn insert<T: Cacheable>(
        &self,
        key: impl Into<CacheKey>,
        value: T,
        ttl: impl Into<Ttl>,
        tags: &[&str],
    ) -> bool {
        let key = key.into();
        let hash = self.core.hash(key.as_str());
        // Other instances must not keep serving what this value replaces.
        #[cfg(feature = "redis")]
        self.share(|| crate::shared::Invalidation::Key(key.as_str().to_owned()));
        let now = tokio::time::Instant::now();
        let Some(mut new) = self
            .core
            .new_entry(&Arc::new(value), hash, ttl.into(), None, now)
        else {
            self.core.invalidate_key(key.as_str());
            return false;
        };
        new.tags = self.core.tags.stamp(tags);
        self.core.insert(key, new) == Store::Stored
    }

    /// Removes `key`'s entry; a load running for it will not store its value, and later
    /// callers do not join it. Returns whether an entry was removed (in this process).
    ///
    /// With a shared tier the key is also deleted from Redis and dropped by every other
    /// instance, asynchronously (see `flush_invalidations`, feature `redis`).
    pub fn invalidate(&self, key: impl AsRef<str>) -> bool {
        let key = key.as_ref();
        #[cfg(feature = "redis")]
        self.share(|| crate::shared::Invalidation::Key(key.to_owned()));
        self.core.invalidate_key(key)
    }

    /// Invalidates every entry tagged `tag`, and every running load that carries it,
    /// without scanning the cache. Returns how many entries were removed (in this process).
    ///
    /// Once this returns, no call returns a value for a key tagged `tag` that was loaded
    /// before the call began (see the crate's guarantees). With a shared tier the tag is
    /// also invalidated in Redis and in every other instance, asynchronously.
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        #[cfg(feature = "redis")]
        self.share(|| crate::shared::Invalidation::Tag(tag.to_owned()));
        self.core.invalidate_tag(tag)
    }

    /// [`invalidate_tag`](Self::invalidate_tag) for each tag; returns the total removed.
    pub fn invalidate_tags(&self, tags: &[&str]) -> usize {
        tags.iter().map(|tag| self.invalidate_tag(tag)).sum()
    }

    /// Invalidates every key starting with `prefix` (entries and running loads). This
    /// scans every shard (and, with a shared tier, the keys under the prefix inside
    /// Redis); prefer tags on hot paths. Returns how many entries were removed (in this
    /// process).
    pub fn invalidate_prefix(&self, prefix: &str) -> usize {
        #[cfg(feature = "redis")]
        self.share(|| crate::shared::Invalidation::Prefix(prefix.to_owned()));
        self.core.invalidate_prefix(prefix)
    }

    /// Empties the cache, detaches every running load and forgets the access history of
    /// the admission filter. Returns how many entries were removed (in this process).
    /// Statistics are kept (see [`reset_stats`](Self::reset_stats)). With a shared tier,
    /// Redis and every other instance are emptied too.
    pub fn invalidate_all(&self) -> usize {
        #[cfg(feature = "redis")]
        self.share(|| crate::shared::Invalidation::All);
        self.core.clear()
    }

    /// Whether a fresh entry for `key` is held in this process (L1), without counting a
    /// hit or a miss or touching the eviction order.
    pub fn contains_key(&self, key: impl AsRef<str>) -> bool {
        let key = key.as_ref();
        self.core.contains(key, self.core.hash(key))
    }

    /// Removes every expired or invalidated entry now and forgets unused tags; returns
    /// how many entries were removed. Shards also sweep themselves once per "capacity"
    /// writes, and lookups remove the dead entries they meet, so calling this is only
    /// needed to free memory sooner (see [`spawn_sweeper`](Self::spawn_sweeper)).
    pub fn sweep(&self) -> usize {
        self.core.sweep()
    }

    /// Spawns a task that calls [`sweep`](Self::sweep) every `period`. The task holds no
    /// strong reference: it ends by itself once every handle to the cache is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if `period` is zero.
    pub fn spawn_sweeper(&self, period: Duration) -> JoinHandle<()> {
        let core: Weak<Core> = Arc::downgrade(&self.core);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                ticks.tick().await;
                let Some(core) = core.upgrade() else { break };
                let removed = core.sweep();
                if removed > 0 {
                    tracing::debug!(removed, "cache sweep");
                }
            }
        })
    }

    /// A snapshot of the statistics. Cheap: it locks each shard briefly and never waits
    /// for a loader.
    pub fn stats(&self) -> CacheStats {
        let (counters, gauges) = self.core.counters();
        stats::snapshot(&counters, &self.core.loads, gauges, self.l2_stats())
    }

    /// Sets every counter to zero (entries stay cached).
    pub fn reset_stats(&self) {
        self.core.reset_counters();
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.reset_stats();
        }
    }

    fn l2_stats(&self) -> Option<crate::L2Stats> {
        #[cfg(feature = "redis")]
        return self.tier.as_deref().map(crate::shared::SharedTier::stats);
        #[cfg(not(feature = "redis"))]
        None
    }

    /// Number of entries held now (expired entries not yet removed included).
    pub fn entry_count(&self) -> usize {
        self.core.entry_count()
    }

    /// The entry bound.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.core.shard_count()
    }

    /// Waits, at most `within`, until every invalidation this instance made so far has
    /// been applied to Redis and published to the other instances; returns whether it
    /// was. Without a shared tier (or without the `redis` feature), returns `true` at once,
    /// so a library can call it after every write whatever cache its user built.
    ///
    /// Invalidation methods are synchronous and queue the Redis side: call this after a
    /// write when the response must not go out before the other instances can no longer
    /// read what the write changed from Redis. (Their L1 copies are dropped when the
    /// message arrives, typically a millisecond later; see the crate's guarantees.)
    pub async fn flush_invalidations(&self, within: Duration) -> bool {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            return tier.flush(within).await;
        }
        let _ = within;
        true
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

/// The methods that only a cache with a shared tier needs (feature `redis`).
#[cfg(feature = "redis")]
impl QueryCache {
    /// Waits until the shared tier is subscribed to invalidations and Redis answers, at
    /// most `within`; returns whether it is. Without a shared tier, returns `false` at
    /// once.
    ///
    /// A cache works before that (from L1 and the loader), but the first subscription
    /// clears L1, so call this before pre-warming at start-up.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn wait_for_redis(&self, within: Duration) -> bool {
        match &self.tier {
            Some(tier) => tier.wait_ready(within).await,
            None => false,
        }
    }

    /// Waits, at most `within`, until this instance has applied at least `count`
    /// invalidation messages from other instances in total (see
    /// [`L2Stats::messages_received`](crate::L2Stats::messages_received)); returns whether
    /// it has. For tests and tools that must observe an invalidation arriving. Without a
    /// shared tier, returns `false` at once.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn wait_for_invalidation_messages(&self, count: u64, within: Duration) -> bool {
        match &self.tier {
            Some(tier) => tier.wait_received(count, within).await,
            None => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn shared_tier(&self) -> Option<&crate::shared::SharedTier> {
        self.tier.as_deref()
    }
}
