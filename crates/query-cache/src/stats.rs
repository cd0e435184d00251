//! Statistics: counters kept where they are cheap to update, summed on snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the cache's statistics, taken by [`QueryCache::stats`](crate::QueryCache::stats).
///
/// Counters run from the cache's creation or the last
/// [`reset_stats`](crate::QueryCache::reset_stats); `entries`, `weight`, `capacity` and
/// `fill_percent` describe the cache now. Taking a snapshot locks each shard for a few
/// nanoseconds and never blocks on a loader. With the `serde` feature it serializes, with
/// durations as milliseconds (`total_load_time_ms`, `mean_load_time_ms`); with the
/// `prometheus` feature `QueryCache::metrics` exports it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache (fresh or stale).
    pub hits: u64,
    /// Lookups that found nothing usable (absent, expired or invalidated) and so loaded
    /// or waited for a load.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub hit_ratio: f64,
    /// `hits / entries`, the original system's "hits per entry"; 0 when the cache is empty.
    pub hits_per_entry: f64,
    /// Hits that were served a stale value under stale-while-revalidate (included in `hits`).
    pub stale_hits: u64,
    /// Loader runs that finished, with a value or an error (background refreshes included).
    pub loads: u64,
    /// Loader runs that returned an error (included in `loads`).
    pub load_errors: u64,
    /// Loader runs that never finished because their caller was dropped or panicked.
    pub abandoned_loads: u64,
    /// Loaded values handed to their callers but not stored because the key or one of its
    /// tags was invalidated while the loader ran (the value may predate the write).
    pub discarded_loads: u64,
    /// Values not stored because they alone exceed a shard's weight budget.
    pub rejected: u64,
    /// Callers that missed and joined a load already running for their key instead of
    /// starting their own.
    pub single_flight_joins: u64,
    /// Total time spent in loaders that finished.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "total_load_time_ms", serialize_with = "as_millis")
    )]
    pub total_load_time: Duration,
    /// `total_load_time / loads`, zero when there were no loads.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "mean_load_time_ms", serialize_with = "as_millis")
    )]
    pub mean_load_time: Duration,
    /// Values stored (by loads, [`insert`](crate::QueryCache::insert) or pre-warming).
    pub inserts: u64,
    /// Live entries removed to respect the entry or weight bound (with
    /// [`Admission::TinyLfu`](crate::Admission::TinyLfu), this includes new entries that
    /// left the admission window without being admitted).
    pub evictions: u64,
    /// Entries removed because they expired (lazily on lookup, by a sweep, or when they
    /// reached the eviction end of the LRU list).
    pub expirations: u64,
    /// Entries removed by invalidation (by key, tag, prefix or all).
    pub invalidations: u64,
    /// Entries held now.
    pub entries: u64,
    /// Maximum number of entries.
    pub capacity: u64,
    /// `entries / capacity` in percent.
    pub fill_percent: f64,
    /// Sum of the weights of the entries held now (0 when there is no weight bound).
    pub weight: u64,
    /// The weight bound, if any.
    pub max_weight: Option<u64>,
    /// The shared Redis tier's statistics, when the cache has one (feature `redis`).
    /// The fields above then describe the in-process tier (L1): its `hits` and `misses`
    /// are L1 hits and misses, and `loads` counts loader runs after both tiers missed.
    /// Left out of the serialized form when there is no shared tier.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub l2: Option<L2Stats>,
}

/// Statistics of the shared Redis tier (L2), in [`CacheStats::l2`].
///
/// Counters run from the cache's creation or the last
/// [`reset_stats`](crate::QueryCache::reset_stats); `invalidations_pending`, `connected`,
/// `subscribed` and the two bounds describe the tier now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct L2Stats {
    /// L1 misses answered from Redis (the loader did not run).
    pub hits: u64,
    /// L1 misses that Redis could not answer (absent, or unreadable: see the next two).
    pub misses: u64,
    /// Entries written by another type, schema version or envelope format (included in
    /// `misses`).
    pub schema_mismatches: u64,
    /// Entries that failed to decode despite a matching schema, and values that failed to
    /// encode.
    pub codec_errors: u64,
    /// Redis calls that failed (connection refused or lost, server error).
    pub errors: u64,
    /// Redis calls that did not answer within the configured timeout.
    pub timeouts: u64,
    /// L1 misses that went straight to the loader without asking Redis, because it had just
    /// failed or this process's own invalidations had not reached it yet.
    pub bypassed: u64,
    /// Values written to Redis.
    pub writes: u64,
    /// Loaded values Redis refused to store because a key, tag or prefix they depend on
    /// was invalidated (by any instance) after their load began.
    pub stale_writes_refused: u64,
    /// Loads of values whose type has no [`SharedCodec`](crate::SharedCodec): cached in L1
    /// only.
    pub unshared_loads: u64,
    /// Invalidations (by key, tag, prefix or all) applied to Redis by this instance.
    pub invalidations_sent: u64,
    /// Invalidation messages this instance published (one per batch of invalidations).
    pub messages_sent: u64,
    /// Invalidation messages from other instances applied to this instance's L1.
    pub messages_received: u64,
    /// Invalidations of this instance queued but not yet applied to Redis.
    pub invalidations_pending: u64,
    /// Times the invalidation subscription was re-established after being lost.
    pub reconnects: u64,
    /// Times L1 was cleared because invalidation messages may have been lost (on every
    /// (re)subscription, and on an unreadable message).
    pub l1_clears: u64,
    /// Whether the last Redis call succeeded.
    pub connected: bool,
    /// Whether the invalidation subscription is up.
    pub subscribed: bool,
    /// The most an L1 entry can lag behind an invalidation whose message was lost: every
    /// L1 entry lives at most this long (`RedisConfig::l1_max_ttl`).
    pub staleness_bound_ms: u64,
    /// The timeout of each Redis call on the request path.
    pub timeout_ms: u64,
}

#[cfg(feature = "serde")]
fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Counters updated only under their shard's lock, so plain integers suffice and the hit
/// path pays no atomic operation for statistics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShardCounters {
    pub(crate) hits: u64,
    pub(crate) stale_hits: u64,
    pub(crate) misses: u64,
    pub(crate) inserts: u64,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
    pub(crate) invalidations: u64,
    pub(crate) rejected: u64,
    pub(crate) discarded_loads: u64,
}

impl ShardCounters {
    pub(crate) fn add(&mut self, other: &ShardCounters) {
        self.hits += other.hits;
        self.stale_hits += other.stale_hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
        self.invalidations += other.invalidations;
        self.rejected += other.rejected;
        self.discarded_loads += other.discarded_loads;
    }
}

/// Counters of the load path. Loads are orders of magnitude slower than the atomic
/// increments, so shared atomics are fine here.
#[derive(Debug, Default)]
pub(crate) struct LoadCounters {
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) joins: AtomicU64,
    pub(crate) load_nanos: AtomicU64,
}

impl LoadCounters {
    pub(crate) fn finished(&self, elapsed: Duration, failed: bool) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.load_errors.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.loads,
            &self.load_errors,
            &self.abandoned,
            &self.joins,
            &self.load_nanos,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

pub(crate) struct Gauges {
    pub(crate) entries: u64,
    pub(crate) weight: u64,
    pub(crate) capacity: u64,
    pub(crate) max_weight: Option<u64>,
}

pub(crate) fn snapshot(
    shards: &ShardCounters,
    loads: &LoadCounters,
    gauges: Gauges,
    l2: Option<L2Stats>,
) -> CacheStats {
    let load_count = loads.loads.load(Ordering::Relaxed);
    let load_nanos = loads.load_nanos.load(Ordering::Relaxed);
    let total_load_time = Duration::from_nanos(load_nanos);
    let lookups = shards.hits + shards.misses;
    CacheStats {
        hits: shards.hits,
        misses: shards.misses,
        hit_ratio: ratio(shards.hits, lookups),
        hits_per_entry: ratio(shards.hits, gauges.entries),
        stale_hits: shards.stale_hits,
        loads: load_count,
        load_errors: loads.load_errors.load(Ordering::Relaxed),
        abandoned_loads: loads.abandoned.load(Ordering::Relaxed),
        discarded_loads: shards.discarded_loads,
        rejected: shards.rejected,
        single_flight_joins: loads.joins.load(Ordering::Relaxed),
        total_load_time,
        mean_load_time: Duration::from_nanos(load_nanos.checked_div(load_count).unwrap_or(0)),
        inserts: shards.inserts,
        evictions: shards.evictions,
        expirations: shards.expirations,
        invalidations: shards.invalidations,
        entries: gauges.entries,
        capacity: gauges.capacity,
        fill_percent: ratio(gauges.entries, gauges.capacity) * 100.0,
        weight: gauges.weight,
        max_weight: gauges.max_weight,
        l2,
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}
