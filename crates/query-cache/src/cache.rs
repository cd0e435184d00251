//! The cache handle and its operations.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[cfg(feature = "redis")]
use crate::Error;
use crate::builder::{Admission, QueryCacheBuilder};
use crate::flight::{deadline, downcast, from_outcome, lead};
use crate::shard::{AnyArc, Lookup, NewEntry, OutcomeReceiver, OutcomeSender, Shard, Store};
use crate::stats::{self, CacheStats, Gauges, LoadCounters, ShardCounters};
use crate::tags::TagRegistry;
use crate::{CacheKey, Cacheable, LoadError, Result, Ttl};

/// A concurrent, bounded, in-memory cache of query results with single-flight loads,
/// TTLs, tag invalidation and statistics.
///
/// `QueryCache` is a cheap handle (`Clone` shares the same cache): build one at start-up
/// and hand clones to whatever needs it. See the [crate documentation](crate) for the
/// guarantees it gives.
#[derive(Clone)]
pub struct QueryCache {
    pub(crate) inner: Arc<Inner>,
}

/// Keeps each shard's lock on its own cache lines so that threads working on different
/// shards do not slow each other down through false sharing.
#[repr(align(128))]
struct Padded<T>(T);

pub(crate) struct Inner {
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Independent of the shards' internal hashers (another seed), so that keys within a
    /// shard still spread over the whole hash table.
    hasher: foldhash::fast::RandomState,
    tags: TagRegistry,
    pub(crate) loads: LoadCounters,
    max_entries: usize,
    pub(crate) max_weight: Option<usize>,
    /// The cap on every L1 entry's lifetime while a shared tier is configured.
    l1_max_ttl: Option<Duration>,
    #[cfg(feature = "redis")]
    pub(crate) shared: Option<crate::shared::SharedTier>,
}

impl Inner {
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // Multiply-shift maps the high half of the hash onto any shard count without a
        // division.
        let index = ((hash >> 32) * self.shards.len() as u64) >> 32;
        &self.shards[index as usize].0
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// How long a value may stay fresh, then stale, in L1: the TTL (and, for a value read
    /// from the shared tier, the lifetime it has left there), capped by `l1_max_ttl`.
    /// `None` when L1 keeps nothing (a cap of zero).
    pub(crate) fn l1_lifetime(
        &self,
        ttl: Ttl,
        shared_ttl_left: Option<Duration>,
    ) -> Option<(Duration, Duration)> {
        let fresh = shared_ttl_left.map_or(ttl.fresh_for(), |left| left.min(ttl.fresh_for()));
        match self.l1_max_ttl {
            None => Some((fresh, ttl.stale_grace())),
            Some(cap) if cap.is_zero() => None,
            Some(cap) => {
                let fresh = fresh.min(cap);
                Some((fresh, ttl.stale_grace().min(cap - fresh)))
            }
        }
    }

    /// Whether values loaded for `tags` may be read from or written to a shared tier
    /// (which needs the tag names, not only their local stamps).
    fn has_shared_tier(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.shared.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Removes `key`'s entry in this process and detaches its load.
    pub(crate) fn invalidate_key_local(&self, key: &str) -> bool {
        let removed = self.shard(self.hash(key)).lock().invalidate(key, None);
        tracing::debug!(key, removed, "cache key invalidated");
        removed
    }

    /// Invalidates `tag` in this process.
    pub(crate) fn invalidate_tag_local(&self, tag: &str) -> usize {
        let members = self.tags.invalidate(tag);
        let removed = members
            .iter()
            .filter(|(key, id)| {
                self.shard(self.hash(key.as_str()))
                    .lock()
                    .invalidate(key.as_str(), Some(*id))
            })
            .count();
        tracing::debug!(tag, removed, "cache tag invalidated");
        removed
    }

    /// Invalidates every key starting with `prefix` in this process.
    pub(crate) fn invalidate_prefix_local(&self, prefix: &str) -> usize {
        let removed =
            self.for_each_shard(|shard| shard.invalidate_where(|key| key.starts_with(prefix)));
        tracing::debug!(prefix, removed, "cache prefix invalidated");
        removed
    }

    /// Empties this process's cache and detaches every running load.
    pub(crate) fn clear_local(&self) -> usize {
        let removed = self.for_each_shard(|shard| {
            shard.clear_sketch();
            shard.invalidate_where(|_| true)
        });
        tracing::debug!(removed, "cache cleared");
        removed
    }

    fn for_each_shard(&self, mut f: impl FnMut(&mut Shard) -> usize) -> usize {
        self.shards.iter().map(|shard| f(&mut shard.0.lock())).sum()
    }

    /// Queues an invalidation for the shared tier, if there is one.
    #[cfg(feature = "redis")]
    fn share(&self, invalidation: impl FnOnce() -> crate::shared::Invalidation) {
        if let Some(tier) = &self.shared {
            tier.enqueue(invalidation());
        }
    }
}

/// One pass of `with_cache` under the shard lock; no lock is held across an `.await`.
enum Step {
    Hit(AnyArc, &'static str),
    Stale {
        value: AnyArc,
        type_name: &'static str,
        refresh: Option<(CacheKey, u64, OutcomeSender)>,
    },
    Join(OutcomeReceiver),
    Lead(CacheKey, u64, OutcomeSender),
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("shards", &self.inner.shards.len())
            .field("max_entries", &self.inner.max_entries)
            .field("max_weight", &self.inner.max_weight)
            .finish_non_exhaustive()
    }
}

impl QueryCache {
    /// A builder to configure bounds, shards and admission.
    pub fn builder() -> QueryCacheBuilder {
        QueryCacheBuilder::default()
    }

    pub(crate) fn from_config(builder: QueryCacheBuilder, shards: usize) -> Result<Self> {
        let QueryCacheBuilder {
            max_entries,
            max_weight,
            admission,
            ..
        } = builder;
        // Split the bounds so that the shares add up exactly to the totals.
        let share = |total: usize, i: usize| total / shards + usize::from(i < total % shards);
        let shards: Box<[Padded<Mutex<Shard>>]> = (0..shards)
            .map(|i| {
                Padded(Mutex::new(Shard::new(
                    share(max_entries, i),
                    max_weight.map(|w| share(w, i)),
                    admission == Admission::TinyLfu,
                )))
            })
            .collect();
        let inner = |l1_max_ttl| Inner {
            shards,
            hasher: foldhash::fast::RandomState::default(),
            tags: TagRegistry::default(),
            loads: LoadCounters::default(),
            max_entries,
            max_weight,
            l1_max_ttl,
            #[cfg(feature = "redis")]
            shared: None,
        };
        #[cfg(feature = "redis")]
        if let Some(config) = builder.redis {
            config.validate()?;
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::InvalidConfig {
                    reason: "a cache with a Redis tier must be built inside a tokio runtime",
                });
            }
            let mut failed = None;
            // Cyclic: the subscriber task holds a weak handle to apply invalidations.
            let inner = Arc::new_cyclic(|weak| {
                let mut inner = inner(Some(config.l1_max_ttl));
                match crate::shared::SharedTier::start(&config, weak.clone()) {
                    Ok(tier) => inner.shared = Some(tier),
                    Err(error) => failed = Some(error),
                }
                inner
            });
            if let Some(error) = failed {
                return Err(Error::InvalidRedisUrl {
                    url: config.redacted_url().to_owned(),
                    reason: error.to_string(),
                });
            }
            return Ok(QueryCache { inner });
        }
        Ok(QueryCache {
            inner: Arc::new(inner(None)),
        })
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
        let hash = self.inner.hash(key);
        let mut first_attempt = true;
        loop {
            match self.step::<T>(key, hash, tags, first_attempt) {
                Step::Hit(value, found) => return Ok(downcast(value, found, key)?),
                Step::Stale {
                    value,
                    type_name,
                    refresh,
                } => {
                    if let Some((key, id, sender)) = refresh {
                        self.spawn_refresh(key, hash, id, sender, ttl, tags, loader);
                    }
                    return Ok(downcast(value, type_name, key)?);
                }
                Step::Join(mut outcome) => {
                    self.inner.loads.joins.fetch_add(1, Ordering::Relaxed);
                    let finished = Box::pin(outcome.wait_for(Option::is_some))
                        .await
                        .map(|o| o.clone());
                    if let Ok(Some(outcome)) = finished {
                        return from_outcome(key, outcome);
                    }
                    // The leader was dropped or panicked: look again, maybe lead.
                    first_attempt = false;
                }
                Step::Lead(key, id, sender) => {
                    // Boxed so that the loader's future does not inflate the state of
                    // every `with_cache` call, most of which are hits.
                    return Box::pin(lead(&self.inner, &key, hash, id, sender, ttl, tags, loader))
                        .await;
                }
            }
        }
    }

    fn step<T: Cacheable>(&self, key: &str, hash: u64, tags: &[&str], first_attempt: bool) -> Step {
        let now = Instant::now();
        let mut shard = self.inner.shard(hash).lock();
        match shard.lookup(key, hash, now, true) {
            Lookup::Fresh(value, found) => return Step::Hit(value, found),
            Lookup::Stale(value, type_name) => {
                // Refresh only with a loader of the stored type, and only one at a time.
                let refresh = (value.is::<T>() && !shard.has_flight(key)).then(|| {
                    let key = CacheKey::from(key);
                    let (id, sender) = shard.start_flight(key.clone(), self.inner.tags.stamp(tags));
                    (key, id, sender)
                });
                return Step::Stale {
                    value,
                    type_name,
                    refresh,
                };
            }
            Lookup::Missing => {}
        }
        if first_attempt {
            shard.counters.misses += 1;
        }
        if let Some(outcome) = shard.joinable_flight(key) {
            return Step::Join(outcome);
        }
        let key = CacheKey::from(key);
        // Stamped before the loader runs: a tag invalidated from here on marks the value
        // this load returns as possibly stale.
        let (id, sender) = shard.start_flight(key.clone(), self.inner.tags.stamp(tags));
        Step::Lead(key, id, sender)
    }

    #[allow(clippy::too_many_arguments)] // the flight's parts, handed over to a task
    fn spawn_refresh<T, E, F, Fut>(
        &self,
        key: CacheKey,
        hash: u64,
        id: u64,
        sender: OutcomeSender,
        ttl: Ttl,
        tags: &[&str],
        loader: F,
    ) where
        T: Cacheable,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to refresh on: serve the stale value and let the entry run out.
            self.inner.shard(hash).lock().end_flight(key.as_str(), id);
            tracing::warn!(key = %key, "stale-while-revalidate refresh skipped: no tokio runtime");
            return;
        };
        let cache = self.clone();
        // Only the shared tier needs the names; L1 works from the flight's stamps.
        let tags: Vec<String> = if self.inner.has_shared_tier() {
            tags.iter().map(|tag| (*tag).to_owned()).collect()
        } else {
            Vec::new()
        };
        runtime.spawn(async move {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let refreshed =
                lead::<T, E, F, Fut>(&cache.inner, &key, hash, id, sender, ttl, &tags, loader)
                    .await;
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
        let hash = self.inner.hash(key);
        let now = Instant::now();
        let mut shard = self.inner.shard(hash).lock();
        match shard.lookup(key, hash, now, false) {
            Lookup::Fresh(value, found) => {
                drop(shard);
                downcast(value, found, key).map(Some)
            }
            Lookup::Stale(..) | Lookup::Missing => {
                shard.counters.misses += 1;
                Ok(None)
            }
        }
    }

    /// Stores `value` under `key` for `ttl` with `tags`, replacing any entry and
    /// superseding any load running for `key` (its value will not be stored). Bypasses
    /// the admission filter. Returns whether the value was stored: it is not if it alone
    /// exceeds a shard's weight budget.
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
        let ttl = ttl.into();
        let hash = self.inner.hash(key.as_str());
        let now = Instant::now();
        let weight = if self.inner.max_weight.is_some() {
            value.weight()
        } else {
            0
        };
        // Other instances must not keep serving what this value replaces.
        #[cfg(feature = "redis")]
        self.inner
            .share(|| crate::shared::Invalidation::Key(key.as_str().to_owned()));
        let Some((fresh_for, grace)) = self.inner.l1_lifetime(ttl, None) else {
            self.inner.invalidate_key_local(key.as_str());
            return false;
        };
        let fresh_until = deadline(now, fresh_for);
        let new = NewEntry {
            value: Arc::new(value),
            type_name: std::any::type_name::<T>(),
            fresh_until,
            stale_until: deadline(fresh_until, grace),
            tags: self.inner.tags.stamp(tags),
            weight,
            hash,
        };
        self.inner.shard(hash).lock().insert(key, new, now) == Store::Stored
    }

    /// Removes `key`'s entry; a load running for it will not store its value, and later
    /// callers do not join it. Returns whether an entry was removed (in this process).
    ///
    /// With a shared tier the key is also deleted from Redis and dropped by every other
    /// instance, asynchronously (see `flush_invalidations`, feature `redis`).
    pub fn invalidate(&self, key: impl AsRef<str>) -> bool {
        let key = key.as_ref();
        #[cfg(feature = "redis")]
        self.inner
            .share(|| crate::shared::Invalidation::Key(key.to_owned()));
        self.inner.invalidate_key_local(key)
    }

    /// Invalidates every entry tagged `tag`, and every running load that carries it,
    /// without scanning the cache. Returns how many entries were removed (in this process).
    ///
    /// Once this returns, no call returns a value for a key tagged `tag` that was loaded
    /// before the call began (see the crate's guarantees). With a shared tier the tag is
    /// also invalidated in Redis and in every other instance, asynchronously.
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        #[cfg(feature = "redis")]
        self.inner
            .share(|| crate::shared::Invalidation::Tag(tag.to_owned()));
        self.inner.invalidate_tag_local(tag)
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
        self.inner
            .share(|| crate::shared::Invalidation::Prefix(prefix.to_owned()));
        self.inner.invalidate_prefix_local(prefix)
    }

    /// Empties the cache and detaches every running load. Returns how many entries were
    /// removed (in this process). Statistics are kept (see
    /// [`reset_stats`](Self::reset_stats)). With a shared tier, Redis and every other
    /// instance are emptied too.
    pub fn invalidate_all(&self) -> usize {
        #[cfg(feature = "redis")]
        self.inner.share(|| crate::shared::Invalidation::All);
        self.inner.clear_local()
    }

    /// Whether a fresh entry for `key` is held in this process (L1), without counting a
    /// hit or a miss or touching the LRU order.
    pub fn contains_key(&self, key: impl AsRef<str>) -> bool {
        let key = key.as_ref();
        let hash = self.inner.hash(key);
        self.inner
            .shard(hash)
            .lock()
            .peek_fresh(key, Instant::now())
    }

    /// Removes every expired or invalidated entry now and forgets unused tags; returns
    /// how many entries were removed. Shards also sweep themselves once per "capacity"
    /// writes, and lookups remove the dead entries they meet, so calling this is only
    /// needed to free memory sooner (see [`spawn_sweeper`](Self::spawn_sweeper)).
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let removed = self.inner.for_each_shard(|shard| shard.sweep(now));
        self.inner.tags.collect_unused();
        removed
    }

    /// Spawns a task that calls [`sweep`](Self::sweep) every `period`. The task holds no
    /// strong reference: it ends by itself once every handle to the cache is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if `period` is zero.
    pub fn spawn_sweeper(&self, period: Duration) -> JoinHandle<()> {
        let cache: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                ticks.tick().await;
                let Some(inner) = cache.upgrade() else { break };
                let removed = QueryCache { inner }.sweep();
                if removed > 0 {
                    tracing::debug!(removed, "cache sweep");
                }
            }
        })
    }

    /// A snapshot of the statistics. Cheap: it locks each shard briefly and never waits
    /// for a loader.
    pub fn stats(&self) -> CacheStats {
        let mut counters = ShardCounters::default();
        let (mut entries, mut weight) = (0_u64, 0_u64);
        for shard in self.inner.shards.iter() {
            let shard = shard.0.lock();
            counters.add(&shard.counters);
            entries += shard.len() as u64;
            weight += shard.weight() as u64;
        }
        stats::snapshot(
            &counters,
            &self.inner.loads,
            Gauges {
                entries,
                weight,
                capacity: self.inner.max_entries as u64,
                max_weight: self.inner.max_weight.map(|w| w as u64),
            },
            self.l2_stats(),
        )
    }

    /// Sets every counter to zero (entries stay cached).
    pub fn reset_stats(&self) {
        for shard in self.inner.shards.iter() {
            shard.0.lock().reset_counters();
        }
        self.inner.loads.reset();
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.inner.shared {
            tier.reset_stats();
        }
    }

    fn l2_stats(&self) -> Option<crate::L2Stats> {
        #[cfg(feature = "redis")]
        return self
            .inner
            .shared
            .as_ref()
            .map(crate::shared::SharedTier::stats);
        #[cfg(not(feature = "redis"))]
        None
    }

    /// Number of entries held now (expired entries not yet removed included).
    pub fn entry_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.0.lock().len())
            .sum()
    }

    /// The entry bound.
    pub fn capacity(&self) -> usize {
        self.inner.max_entries
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }
}
