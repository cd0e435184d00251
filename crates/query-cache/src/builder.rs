//! Configuration of a [`QueryCache`].

use std::num::NonZeroUsize;

use crate::core::CoreConfig;
use crate::policy::WindowSizing;
use crate::{Error, QueryCache, Result};

/// What happens when a new value (loaded or inserted) needs room in a full shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Admission {
    /// Adaptive W-TinyLFU (the design of Caffeine): a new value enters an LRU *window*;
    /// when it leaves the window it joins the main segment only if a count-min sketch of
    /// recent access frequencies (with aging) says its key is requested more often than
    /// the entry it would evict. One-off keys then cannot push out popular ones. The
    /// window's size is adapted to the workload (by misses on keys that just left the
    /// window or the main segment), from 1 % of the
    /// capacity (frequency-heavy traffic) up to all of it (recency-heavy traffic, where
    /// it behaves as an LRU). The sketch and the window are sized for the cache as a
    /// whole, so the hit ratio does not depend on the shard count. See
    /// `docs/PERFORMANCE.md` for hit ratios against moka, quick_cache and LRU.
    #[default]
    TinyLfu,
    /// Plain LRU: every new value is stored and the least recently used entries make room.
    Always,
}

/// Builder for a [`QueryCache`], from [`QueryCache::builder`].
///
/// # Examples
///
/// ```
/// use query_cache::{Admission, QueryCache};
///
/// let cache = QueryCache::builder()
///     .max_entries(50_000)
///     .max_weight(64 * 1024 * 1024) // about 64 MiB of values
///     .shards(16)
///     .admission(Admission::TinyLfu)
///     .build()?;
/// assert_eq!(cache.stats().capacity, 50_000);
/// # Ok::<(), query_cache::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct QueryCacheBuilder {
    pub(crate) max_entries: usize,
    pub(crate) max_weight: Option<usize>,
    pub(crate) shards: Option<usize>,
    pub(crate) admission: Admission,
    pub(crate) hash_seed: Option<u64>,
    /// How W-TinyLFU sizes its window (tests compare the fixed 1 % window).
    pub(crate) window: WindowSizing,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::RedisConfig>,
}

impl Default for QueryCacheBuilder {
    fn default() -> Self {
        QueryCacheBuilder {
            max_entries: QueryCacheBuilder::DEFAULT_MAX_ENTRIES,
            max_weight: None,
            shards: None,
            admission: Admission::default(),
            hash_seed: None,
            window: WindowSizing::Adaptive,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl QueryCacheBuilder {
    /// Entry bound used when [`max_entries`](Self::max_entries) is not called.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    /// The fewest entries a shard holds: a cache of fewer than twice this many has one
    /// shard. See [`shards`](Self::shards).
    pub const MIN_SHARD_ENTRIES: usize = 256;

    /// The most entries the cache holds at once (default 10 000).
    ///
    /// The bound is split evenly over the shards and each shard enforces its share, so the
    /// total is never exceeded.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Bounds the total weight ([`Cacheable::weight`](crate::Cacheable::weight), roughly
    /// bytes) of the values held. Unbounded by default.
    ///
    /// Each shard gets an equal share; a value heavier than one share is returned to its
    /// callers but never stored (counted in [`CacheStats::rejected`](crate::CacheStats::rejected)).
    pub fn max_weight(mut self, max_weight: usize) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// Number of independently locked shards. Default: the next power of two at or
    /// above four times the available parallelism, so that threads on different cores
    /// rarely want the same lock.
    ///
    /// Each shard holds at least [`MIN_SHARD_ENTRIES`](Self::MIN_SHARD_ENTRIES) entries
    /// (fewer shards are used for a smaller cache): a shard is an independent LRU of its
    /// share of the capacity, and shares much smaller than that would make the hit ratio
    /// depend on how the popular keys happen to spread over the shards.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Admission policy when a shard is full (default [`Admission::TinyLfu`]).
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Seeds the hash of keys (which picks a key's shard and its counters in the
    /// admission filter) with `seed` instead of a random number, so that replaying the
    /// same requests gives the same hit ratio: for simulations and tests. Keep the random
    /// default in production: keys chosen by users could otherwise be crafted to collide.
    pub fn hash_seed(mut self, seed: u64) -> Self {
        self.hash_seed = Some(seed);
        self
    }

    /// Puts a shared Redis tier (L2) behind the in-process cache (feature `redis`): L1
    /// misses read Redis before the loader runs, loads fill both tiers, and invalidations
    /// reach Redis and every other instance on the same prefix. See the
    /// [crate documentation](crate#the-shared-redis-tier) for the design and guarantees.
    ///
    /// Building then needs a tokio runtime (the tier runs two background tasks) but never
    /// waits for Redis, nor fails because it is down: the cache works without it and
    /// connects when it can. Use [`QueryCache::wait_for_redis`] to wait at start-up.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, config: crate::RedisConfig) -> Self {
        self.redis = Some(config);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `max_entries`, `shards` or `max_weight` is zero, if
    /// `max_entries` is 2^32 or more, or if `max_weight` is smaller than the number of
    /// shards; with a Redis tier, also if a
    /// timeout is zero or if no tokio runtime is running.
    pub fn build(self) -> Result<QueryCache> {
        let max_entries = NonZeroUsize::new(self.max_entries).ok_or(Error::InvalidConfig {
            reason: "max_entries must be at least 1",
        })?;
        if u32::try_from(max_entries.get()).is_err() {
            return Err(Error::InvalidConfig {
                reason: "max_entries must be below 2^32",
            });
        }
        let shards = match self.shards {
            Some(0) => {
                return Err(Error::InvalidConfig {
                    reason: "shards must be at least 1",
                });
            }
            Some(shards) => shards,
            None => default_shards(),
        };
        let shards = shards.min((max_entries.get() / Self::MIN_SHARD_ENTRIES).max(1));
        if let Some(max_weight) = self.max_weight
            && max_weight < shards
        {
            return Err(Error::InvalidConfig {
                reason: "max_weight must be at least the number of shards",
            });
        }
        let config = |l1_max_ttl| CoreConfig {
            max_entries: max_entries.get(),
            max_weight: self.max_weight,
            shards,
            window: (self.admission == Admission::TinyLfu).then_some(self.window),
            hash_seed: self.hash_seed.unwrap_or_else(random_seed),
            l1_max_ttl,
        };
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.validate()?;
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::InvalidConfig {
                    reason: "a cache with a Redis tier must be built inside a tokio runtime",
                });
            }
            return QueryCache::with_tier(config(Some(redis.l1_max_ttl)), redis);
        }
        Ok(QueryCache::new(config(None)))
    }
}

/// A random seed from the standard library's randomly keyed hasher.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    (4 * cores).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bounds_are_refused() {
        assert!(matches!(
            QueryCache::builder().max_entries(0).build(),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            QueryCache::builder().shards(0).build(),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            QueryCache::builder()
                .max_entries(4 * QueryCacheBuilder::MIN_SHARD_ENTRIES)
                .shards(4)
                .max_weight(3)
                .build(),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn shards_hold_at_least_the_minimum() {
        let shards = |max_entries| {
            QueryCache::builder()
                .max_entries(max_entries)
                .shards(64)
                .build()
                .unwrap()
                .shard_count()
        };
        assert_eq!(shards(100), 1);
        assert_eq!(shards(511), 1);
        assert_eq!(shards(512), 2);
        assert_eq!(shards(1_000_000), 64);
    }

    #[test]
    fn default_shard_count_is_a_power_of_two() {
        assert!(default_shards().is_power_of_two());
        assert!(default_shards() >= 4);
    }
}
