//! A prometheus-client collector of the statistics (feature `prometheus`).
//!
//! Names follow Prometheus conventions: counters end in `_total` (the encoder appends
//! it), durations are seconds, the hit ratio is not exported (it is
//! `rate(cache_hits_total[5m]) / (rate(cache_hits_total[5m]) + rate(cache_misses_total[5m]))`,
//! a recording rule), and the namespace is the caller's: register the collector in a
//! sub-registry with the prefix the service uses.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::{CacheStats, QueryCache};

/// A [`Collector`] that reads a cache's [`CacheStats`] at every scrape (feature
/// `prometheus`). Built by [`QueryCache::metrics`].
///
/// | metric | type | what |
/// | --- | --- | --- |
/// | `cache_hits_total`, `cache_misses_total` | counter | lookups answered from the cache, and not ([`CacheStats::hits`], [`CacheStats::misses`]) |
/// | `cache_stale_hits_total` | counter | hits served stale under stale-while-revalidate (included in hits) |
/// | `cache_loads_total`, `cache_load_errors_total` | counter | loader runs that finished, and those that failed |
/// | `cache_load_seconds_total` | counter | time spent in loaders that finished |
/// | `cache_abandoned_loads_total`, `cache_discarded_loads_total`, `cache_rejected_total`, `cache_single_flight_joins_total` | counter | see [`CacheStats`] |
/// | `cache_inserts_total`, `cache_evictions_total`, `cache_expirations_total`, `cache_invalidations_total` | counter | values stored, and entries removed by the bounds, by expiry, by invalidation |
/// | `cache_entries`, `cache_capacity_entries` | gauge | entries held, and the entry bound |
/// | `cache_weight`, `cache_max_weight` | gauge | weight held, and the weight bound (only with a weight bound) |
/// | `cache_l2_*` | counter | the shared tier's [`L2Stats`](crate::L2Stats) counters, under the same names (only with a shared tier) |
/// | `cache_l2_connected`, `cache_l2_subscribed`, `cache_l2_invalidations_pending` | gauge | the shared tier's state |
/// | `cache_l2_staleness_bound_seconds`, `cache_l2_timeout_seconds` | gauge | its configured bounds |
///
/// Counters restart from zero after [`QueryCache::reset_stats`], which Prometheus reads
/// as a counter reset.
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub struct CacheMetrics {
    cache: QueryCache,
}

impl QueryCache {
    /// A prometheus-client [`Collector`] of this cache's statistics, read at each scrape
    /// (feature `prometheus`). Register it under the service's namespace in one line;
    /// see [`CacheMetrics`] for what it exports.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use query_cache::QueryCache;
    ///
    /// let cache = QueryCache::builder().build()?;
    /// let mut registry = Registry::default();
    /// registry.sub_registry_with_prefix("hotel").register_collector(Box::new(cache.metrics()));
    ///
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry)?;
    /// assert!(text.contains("hotel_cache_hits_total 0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
    pub fn metrics(&self) -> CacheMetrics {
        CacheMetrics {
            cache: self.clone(),
        }
    }
}

/// Encodes one metric, in `unit` when it has one (a counter's name gets `_total` from the
/// encoder).
fn encode(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for CacheMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let CacheStats {
            hits,
            misses,
            stale_hits,
            loads,
            load_errors,
            abandoned_loads,
            discarded_loads,
            rejected,
            single_flight_joins,
            total_load_time,
            inserts,
            evictions,
            expirations,
            invalidations,
            entries,
            capacity,
            weight,
            max_weight,
            l2,
            ..
        } = self.cache.stats();
        let e = &mut encoder;
        encode(
            e,
            "cache_hits",
            "Lookups answered from the cache (fresh or stale)",
            None,
            ConstCounter::new(hits),
        )?;
        encode(
            e,
            "cache_misses",
            "Lookups that found nothing usable and loaded or waited for a load",
            None,
            ConstCounter::new(misses),
        )?;
        encode(
            e,
            "cache_stale_hits",
            "Hits served a stale value under stale-while-revalidate (included in hits)",
            None,
            ConstCounter::new(stale_hits),
        )?;
        encode(
            e,
            "cache_loads",
            "Loader runs that finished, with a value or an error",
            None,
            ConstCounter::new(loads),
        )?;
        encode(
            e,
            "cache_load_errors",
            "Loader runs that returned an error (included in loads)",
            None,
            ConstCounter::new(load_errors),
        )?;
        encode(
            e,
            "cache_load",
            "Time spent in loaders that finished",
            Some(&Unit::Seconds),
            ConstCounter::new(total_load_time.as_secs_f64()),
        )?;
        encode(
            e,
            "cache_abandoned_loads",
            "Loader runs that never finished because their caller was dropped or panicked",
            None,
            ConstCounter::new(abandoned_loads),
        )?;
        encode(
            e,
            "cache_discarded_loads",
            "Loaded values not stored because their key or a tag was invalidated during the load",
            None,
            ConstCounter::new(discarded_loads),
        )?;
        encode(
            e,
            "cache_rejected",
            "Values not stored because they alone exceed a shard's weight budget",
            None,
            ConstCounter::new(rejected),
        )?;
        encode(
            e,
            "cache_single_flight_joins",
            "Misses that joined a load already running for their key",
            None,
            ConstCounter::new(single_flight_joins),
        )?;
        encode(
            e,
            "cache_inserts",
            "Values stored",
            None,
            ConstCounter::new(inserts),
        )?;
        encode(
            e,
            "cache_evictions",
            "Live entries removed to respect the entry or weight bound",
            None,
            ConstCounter::new(evictions),
        )?;
        encode(
            e,
            "cache_expirations",
            "Entries removed because they expired",
            None,
            ConstCounter::new(expirations),
        )?;
        encode(
            e,
            "cache_invalidations",
            "Entries removed by invalidation",
            None,
            ConstCounter::new(invalidations),
        )?;
        encode(
            e,
            "cache_entries",
            "Entries held",
            None,
            ConstGauge::new(entries),
        )?;
        encode(
            e,
            "cache_capacity_entries",
            "The entry bound",
            None,
            ConstGauge::new(capacity),
        )?;
        if let Some(max_weight) = max_weight {
            encode(
                e,
                "cache_weight",
                "Weight of the entries held (roughly bytes)",
                None,
                ConstGauge::new(weight),
            )?;
            encode(
                e,
                "cache_max_weight",
                "The weight bound",
                None,
                ConstGauge::new(max_weight),
            )?;
        }
        let Some(l2) = l2 else { return Ok(()) };
        encode(
            e,
            "cache_l2_hits",
            "Misses in this process answered from Redis",
            None,
            ConstCounter::new(l2.hits),
        )?;
        encode(
            e,
            "cache_l2_misses",
            "Misses in this process that Redis could not answer",
            None,
            ConstCounter::new(l2.misses),
        )?;
        encode(
            e,
            "cache_l2_schema_mismatches",
            "Redis entries of another type, schema version or format (included in l2 misses)",
            None,
            ConstCounter::new(l2.schema_mismatches),
        )?;
        encode(
            e,
            "cache_l2_codec_errors",
            "Redis entries that failed to decode, and values that failed to encode",
            None,
            ConstCounter::new(l2.codec_errors),
        )?;
        encode(
            e,
            "cache_l2_errors",
            "Redis calls that failed",
            None,
            ConstCounter::new(l2.errors),
        )?;
        encode(
            e,
            "cache_l2_timeouts",
            "Redis calls that timed out",
            None,
            ConstCounter::new(l2.timeouts),
        )?;
        encode(
            e,
            "cache_l2_bypassed",
            "Misses that skipped Redis (it had just failed, or own invalidations were pending)",
            None,
            ConstCounter::new(l2.bypassed),
        )?;
        encode(
            e,
            "cache_l2_writes",
            "Values written to Redis",
            None,
            ConstCounter::new(l2.writes),
        )?;
        encode(
            e,
            "cache_l2_stale_writes_refused",
            "Loaded values Redis refused because what they depend on was invalidated meanwhile",
            None,
            ConstCounter::new(l2.stale_writes_refused),
        )?;
        encode(
            e,
            "cache_l2_unshared_loads",
            "Loads of values whose type has no shared codec",
            None,
            ConstCounter::new(l2.unshared_loads),
        )?;
        encode(
            e,
            "cache_l2_invalidations_sent",
            "Invalidations applied to Redis by this instance",
            None,
            ConstCounter::new(l2.invalidations_sent),
        )?;
        encode(
            e,
            "cache_l2_messages_sent",
            "Invalidation messages published",
            None,
            ConstCounter::new(l2.messages_sent),
        )?;
        encode(
            e,
            "cache_l2_messages_received",
            "Invalidation messages from other instances applied here",
            None,
            ConstCounter::new(l2.messages_received),
        )?;
        encode(
            e,
            "cache_l2_reconnects",
            "Times the invalidation subscription was re-established",
            None,
            ConstCounter::new(l2.reconnects),
        )?;
        encode(
            e,
            "cache_l2_l1_clears",
            "Times the in-process cache was cleared because messages may have been lost",
            None,
            ConstCounter::new(l2.l1_clears),
        )?;
        encode(
            e,
            "cache_l2_connected",
            "1 if the last Redis call succeeded",
            None,
            ConstGauge::new(u64::from(l2.connected)),
        )?;
        encode(
            e,
            "cache_l2_subscribed",
            "1 if the invalidation subscription is up",
            None,
            ConstGauge::new(u64::from(l2.subscribed)),
        )?;
        encode(
            e,
            "cache_l2_invalidations_pending",
            "Invalidations of this instance not yet applied to Redis",
            None,
            ConstGauge::new(l2.invalidations_pending),
        )?;
        encode(
            e,
            "cache_l2_staleness_bound",
            "The longest an entry stays in this process while the shared tier is configured",
            Some(&Unit::Seconds),
            ConstGauge::new(l2.staleness_bound_ms as f64 / 1000.0),
        )?;
        encode(
            e,
            "cache_l2_timeout",
            "The timeout of each Redis call on the request path",
            Some(&Unit::Seconds),
            ConstGauge::new(l2.timeout_ms as f64 / 1000.0),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use crate::{QueryCache, Ttl};

    #[tokio::test]
    async fn a_registry_encodes_the_statistics_under_the_callers_namespace() {
        let cache = QueryCache::builder()
            .max_entries(10)
            .max_weight(10_000)
            .build()
            .unwrap();
        for _ in 0..3 {
            cache
                .with_cache("k", Ttl::LONG, &["t"], || async {
                    Ok::<_, Infallible>(7_u64)
                })
                .await
                .unwrap();
        }
        cache.invalidate_tag("t");

        let mut registry = Registry::default();
        registry
            .sub_registry_with_prefix("hotel")
            .register_collector(Box::new(cache.metrics()));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();

        for line in [
            "# TYPE hotel_cache_hits counter",
            "hotel_cache_hits_total 2",
            "hotel_cache_misses_total 1",
            "hotel_cache_loads_total 1",
            "hotel_cache_inserts_total 1",
            "hotel_cache_invalidations_total 1",
            "# TYPE hotel_cache_load_seconds counter",
            "# UNIT hotel_cache_load_seconds seconds",
            "# TYPE hotel_cache_entries gauge",
            "hotel_cache_entries 0",
            "hotel_cache_capacity_entries 10",
            "hotel_cache_max_weight 10000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line `{line}` in:\n{text}"
            );
        }
        // Integer counters, no ratio, and nothing outside the namespace.
        assert!(text.contains("hotel_cache_load_seconds_total "));
        assert!(!text.contains("cache_l2_"), "no shared tier: {text}");
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(sample.starts_with("hotel_cache_"), "{sample}");
            assert!(
                !sample.contains("_ratio"),
                "a ratio is a recording rule: {sample}"
            );
            let value = sample.rsplit(' ').next().unwrap();
            if sample.contains("_total ") && !sample.contains("_seconds_total") {
                assert!(value.parse::<u64>().is_ok(), "integer counter: {sample}");
            }
        }
        assert_eq!(text.lines().last(), Some("# EOF"));
    }
}
