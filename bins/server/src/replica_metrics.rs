//! The read replica's state as Prometheus samples: whether it answers, how stale it is, and
//! where reports went.

use db_connect::{ReadRouter, ReplicaHealth};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// Exports `replica_up`, `replica_lag_seconds` (NaN while the replica is not streaming) and
/// `replica_reads_total{target,reason}` from a [`ReadRouter`] with a replica, read at scrape
/// time.
#[derive(Debug)]
pub struct ReplicaMetrics {
    reads: ReadRouter,
}

impl ReplicaMetrics {
    /// The collector of `reads`' replica.
    pub fn new(reads: ReadRouter) -> Self {
        Self { reads }
    }
}

impl Collector for ReplicaMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(status) = self.reads.status() else {
            return Ok(());
        };
        let (up, lag) = match status.health {
            ReplicaHealth::Streaming { lag } => (1, Some(lag)),
            ReplicaHealth::Unknown | ReplicaHealth::Unreachable | ReplicaHealth::NotStandby => {
                (0, None)
            }
        };
        ConstGauge::new(up).encode(encoder.encode_descriptor(
            "replica_up",
            "1 when the read replica answers and replays the primary's WAL",
            None,
            MetricType::Gauge,
        )?)?;
        // NaN while the replica does not answer or was not checked yet: no lag to speak of
        // (`replica_up` says why), and no threshold on the lag fires on it.
        let lag = lag.map_or(f64::NAN, |lag| lag.as_secs_f64());
        ConstGauge::new(lag).encode(encoder.encode_descriptor(
            "replica_lag_seconds",
            "How stale the read replica may be: age of the newest primary WAL position it has replayed",
            None,
            MetricType::Gauge,
        )?)?;
        let mut reads = encoder.encode_descriptor(
            "replica_reads",
            "Reports by the database that answered them, and why the primary did",
            None,
            MetricType::Counter,
        )?;
        for (labels, count) in [
            (
                [("target", "replica"), ("reason", "fresh")],
                status.replica_reads,
            ),
            (
                [("target", "primary"), ("reason", "lagging")],
                status.primary_reads_lagging,
            ),
            (
                [("target", "primary"), ("reason", "unavailable")],
                status.primary_reads_unavailable,
            ),
        ] {
            ConstCounter::new(count).encode(reads.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
