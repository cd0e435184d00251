//! The cache's state and every operation on it, without I/O: the shards, the tag
//! registry, the load counters and the bounds. Everything above (`load`, `cache`) builds
//! on this module; it depends on nothing above it.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::CacheKey;
use crate::entry::{AnyArc, Entry};
use crate::flights::{OutcomeReceiver, Ticket};
use crate::policy::{CacheWide, Lru, ShardPolicy, WTinyLfu, WindowSizing, share};
use crate::shard::{Lookup, Shard, Store};
use crate::stats::{Gauges, LoadCounters, ShardCounters};
use crate::tags::TagRegistry;
use crate::ttl::Ttl;

/// Keeps each shard's lock on its own cache lines so that threads working on different
/// shards do not slow each other down through false sharing.
#[repr(align(128))]
struct Padded<T>(T);

/// How the core is built (from the builder's settings, already checked).
pub(crate) struct CoreConfig {
    pub(crate) max_entries: usize,
    pub(crate) max_weight: Option<usize>,
    pub(crate) shards: usize,
    /// `None`: plain LRU.
    pub(crate) window: Option<WindowSizing>,
    pub(crate) hash_seed: u64,
    /// The cap on every entry's lifetime (while a shared tier is configured).
    pub(crate) l1_max_ttl: Option<Duration>,
}

pub(crate) struct Core {
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: foldhash::fast::FixedState,
    pub(crate) tags: TagRegistry,
    pub(crate) loads: LoadCounters,
    /// The frequency sketch and window shared by the shards (W-TinyLFU only).
    wide: Option<Arc<CacheWide>>,
    max_entries: usize,
    pub(crate) max_weight: Option<usize>,
    l1_max_ttl: Option<Duration>,
}

/// One pass of `with_cache` under the shard lock; no lock is held across an `.await`.
pub(crate) enum Begin {
    Hit(AnyArc, &'static str),
    Stale {
        value: AnyArc,
        type_name: &'static str,
        /// A refresh to run in the background, if none is running yet.
        refresh: Option<Ticket>,
    },
    Join(OutcomeReceiver),
    Lead(Ticket),
}

impl Core {
    pub(crate) fn new(config: CoreConfig) -> Self {
        let CoreConfig {
            max_entries,
            max_weight,
            shards,
            window,
            hash_seed,
            l1_max_ttl,
        } = config;
        let wide = window.map(|sizing| Arc::new(CacheWide::new(max_entries, sizing)));
        let shards = (0..shards)
            .map(|i| {
                // The shares add up exactly to the totals.
                let capacity = share(max_entries, i, shards);
                let policy = match &wide {
                    Some(wide) => {
                        ShardPolicy::WTinyLfu(WTinyLfu::new(capacity, i, shards, Arc::clone(wide)))
                    }
                    None => ShardPolicy::Lru(Lru::new(capacity)),
                };
                let max_weight = max_weight.map(|w| share(w, i, shards));
                Padded(Mutex::new(Shard::new(policy, capacity, max_weight)))
            })
            .collect();
        Core {
            shards,
            hasher: foldhash::fast::FixedState::with_seed(hash_seed),
            tags: TagRegistry::default(),
            loads: LoadCounters::default(),
            wide,
            max_entries,
            max_weight,
            l1_max_ttl,
        }
    }

    #[inline]
    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // Multiply-shift maps the high half of the hash onto any shard count without a
        // division.
        let index = ((hash >> 32) * self.shards.len() as u64) >> 32;
        &self.shards[index as usize].0
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Looks `key` up for `with_cache`: a hit, a stale value (and the refresh to start),
    /// a load to join, or a new load to lead. Counts a miss on the first attempt.
    pub(crate) fn begin<T: 'static>(
        &self,
        key: &str,
        hash: u64,
        tags: &[&str],
        first_attempt: bool,
    ) -> Begin {
        let now = Instant::now();
        let mut shard = self.shard(hash).lock();
        match shard.lookup(key, hash, now, true) {
            Lookup::Fresh(value, found) => return Begin::Hit(value, found),
            Lookup::Stale(value, type_name) => {
                // Refresh only with a loader of the stored type, and only one at a time.
                let refresh = (value.is::<T>() && !shard.flights.contains(key))
                    .then(|| shard.start_flight(CacheKey::from(key), hash, self.tags.stamp(tags)));
                return Begin::Stale {
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
        if let Some(outcome) = shard.flights.joinable(key) {
            return Begin::Join(outcome);
        }
        // Stamped before the loader runs: a tag invalidated from here on marks the value
        // this load returns as possibly stale.
        Begin::Lead(shard.start_flight(CacheKey::from(key), hash, self.tags.stamp(tags)))
    }

    /// A fresh value for `key` (a hit, counted), or `None` without counting anything: the
    /// first look of [`QueryCache::with_cache_lazy`](crate::QueryCache::with_cache_lazy), whose caller then goes through
    /// [`Core::begin`] (which counts the miss, or serves a stale value).
    #[inline]
    pub(crate) fn fresh(&self, key: &str, hash: u64) -> Option<(AnyArc, &'static str)> {
        let now = Instant::now();
        match self.shard(hash).lock().lookup(key, hash, now, false) {
            Lookup::Fresh(value, found) => Some((value, found)),
            Lookup::Stale(..) | Lookup::Missing => None,
        }
    }

    /// Looks `key` up for `get`: a fresh value, or `None` (a miss, counted).
    #[inline]
    pub(crate) fn get(&self, key: &str, hash: u64) -> Option<(AnyArc, &'static str)> {
        let now = Instant::now();
        let mut shard = self.shard(hash).lock();
        match shard.lookup(key, hash, now, false) {
            Lookup::Fresh(value, found) => Some((value, found)),
            Lookup::Stale(..) | Lookup::Missing => {
                shard.counters.misses += 1;
                None
            }
        }
    }

    /// Whether a fresh entry for `key` is held, without counting or promoting it.
    pub(crate) fn contains(&self, key: &str, hash: u64) -> bool {
        self.shard(hash)
            .lock()
            .peek_fresh(key, hash, Instant::now())
    }

    /// A new entry for a value of `ttl` (and, read from a shared tier, with `ttl_left`
    /// there), or `None` if the cache keeps nothing (an L1 lifetime cap of zero).
    pub(crate) fn new_entry<T: crate::Cacheable>(
        &self,
        value: &Arc<T>,
        hash: u64,
        ttl: Ttl,
        shared_ttl_left: Option<Duration>,
        now: Instant,
    ) -> Option<Entry> {
        let (fresh_for, grace) = self.l1_lifetime(ttl, shared_ttl_left)?;
        let fresh_until = deadline(now, fresh_for);
        Some(Entry {
            value: Arc::clone(value) as AnyArc,
            type_name: std::any::type_name::<T>(),
            fresh_until,
            stale_until: deadline(fresh_until, grace),
            tags: Box::default(),
            // `T::weight`, not `Arc<T>::weight`: the `Arc` itself is shared, not stored.
            weight: if self.max_weight.is_some() {
                T::weight(value)
            } else {
                0
            },
            // The shard gives it its id when it stores it.
            id: 0,
            hash,
        })
    }

    /// How long a value may stay fresh, then stale: the TTL (and, for a value read from
    /// the shared tier, the lifetime it has left there), capped by `l1_max_ttl`. `None`
    /// when the cache keeps nothing (a cap of zero).
    fn l1_lifetime(
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

    /// Stores the value of a finished flight (see [`Shard::finish_flight`]), or just ends
    /// the flight when there is nothing to store.
    pub(crate) fn finish_flight(
        &self,
        key: &CacheKey,
        hash: u64,
        id: u64,
        new: Option<Entry>,
    ) -> Store {
        let mut shard = self.shard(hash).lock();
        match new {
            Some(new) => shard.finish_flight(key, id, new, Instant::now()),
            None => {
                shard.end_flight(key.as_str(), id);
                Store::Discarded
            }
        }
    }

    /// Ends a flight whose load failed or was abandoned.
    pub(crate) fn end_flight(&self, key: &str, hash: u64, id: u64) {
        self.shard(hash).lock().end_flight(key, id);
    }

    /// Whether flight `id` may still store its value (not detached, tags current).
    #[cfg(feature = "redis")]
    pub(crate) fn flight_is_current(&self, key: &str, hash: u64, id: u64) -> bool {
        self.shard(hash).lock().flights.is_current(key, id)
    }

    /// Ends flight `id` without storing its value, counted as discarded.
    #[cfg(feature = "redis")]
    pub(crate) fn discard_flight(&self, key: &str, hash: u64, id: u64) {
        self.shard(hash).lock().discard_flight(key, id);
    }

    /// Stores `new` under `key`, superseding any running load.
    pub(crate) fn insert(&self, key: CacheKey, new: Entry) -> Store {
        let now = Instant::now();
        self.shard(new.hash).lock().insert(key, new, now)
    }

    /// Removes `key`'s entry and detaches its load.
    pub(crate) fn invalidate_key(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let removed = self.shard(hash).lock().invalidate(key, hash, None);
        tracing::debug!(key, removed, "cache key invalidated");
        removed
    }

    /// Invalidates `tag`: its generation moves (so no entry or load stamped before is
    /// served or stored) and its entries are removed.
    pub(crate) fn invalidate_tag(&self, tag: &str) -> usize {
        let members = self.tags.invalidate(tag);
        let removed = members
            .iter()
            .filter(|(key, id)| {
                let hash = self.hash(key.as_str());
                self.shard(hash)
                    .lock()
                    .invalidate(key.as_str(), hash, Some(*id))
            })
            .count();
        tracing::debug!(tag, removed, "cache tag invalidated");
        removed
    }

    /// Invalidates every key starting with `prefix`.
    pub(crate) fn invalidate_prefix(&self, prefix: &str) -> usize {
        let removed =
            self.for_each_shard(|shard| shard.invalidate_where(|key| key.starts_with(prefix)));
        tracing::debug!(prefix, removed, "cache prefix invalidated");
        removed
    }

    /// Empties the cache, detaches every running load and forgets the access history.
    pub(crate) fn clear(&self) -> usize {
        if let Some(wide) = &self.wide {
            wide.forget_accesses();
        }
        let removed = self.for_each_shard(|shard| shard.invalidate_where(|_| true));
        tracing::debug!(removed, "cache cleared");
        removed
    }

    /// Removes every expired or invalidated entry and forgets unused tags.
    pub(crate) fn sweep(&self) -> usize {
        let now = Instant::now();
        let removed = self.for_each_shard(|shard| shard.sweep(now));
        self.tags.collect_unused();
        removed
    }

    fn for_each_shard(&self, mut f: impl FnMut(&mut Shard) -> usize) -> usize {
        self.shards.iter().map(|shard| f(&mut shard.0.lock())).sum()
    }

    /// The shards' counters summed, and the gauges.
    pub(crate) fn counters(&self) -> (ShardCounters, Gauges) {
        let mut counters = ShardCounters::default();
        let (mut entries, mut weight) = (0_u64, 0_u64);
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            counters.add(&shard.counters);
            entries += shard.len() as u64;
            weight += shard.weight() as u64;
        }
        let gauges = Gauges {
            entries,
            weight,
            capacity: self.max_entries as u64,
            max_weight: self.max_weight.map(|w| w as u64),
        };
        (counters, gauges)
    }

    pub(crate) fn reset_counters(&self) {
        for shard in self.shards.iter() {
            shard.0.lock().reset_counters();
        }
        self.loads.reset();
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.lock().len()).sum()
    }

    /// The admission window's size for the whole cache (W-TinyLFU only).
    #[cfg(test)]
    pub(crate) fn window_size(&self) -> Option<usize> {
        self.wide.as_ref().map(|wide| wide.window_size())
    }
}

/// A point in time `after` from `now`, saturating far in the future instead of
/// overflowing for absurd durations.
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    now.checked_add(after.min(FAR_FUTURE)).unwrap_or(now)
}
