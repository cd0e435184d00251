//! What every handler shares.

use std::sync::Arc;

use optimized_queries::HotelCache;
use perf_stats::{MetricsRegistry, QueryTracker};
use sea_orm::DatabaseConnection;

use crate::http_metrics::HttpMetrics;

/// The server's shared state. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// The primary database: every write, and reads that must see their own writes.
    pub primary: DatabaseConnection,
    /// The read replica for reports and other heavy reads, when there is one.
    pub replica: Option<DatabaseConnection>,
    /// The hotel's cached reads and invalidating writes.
    pub hotel: HotelCache,
    /// Statement statistics of both connections.
    pub tracker: QueryTracker,
    /// Everything /metrics exports.
    pub metrics: Arc<MetricsRegistry>,
    /// HTTP request counters and latencies.
    pub http: HttpMetrics,
    /// The backup directory, for health reports (None: not configured).
    pub backups: Option<Arc<backup::BackupRepository>>,
}

impl AppState {
    /// Where reports and other heavy reads go: the replica, or the primary without one.
    pub fn reports(&self) -> &DatabaseConnection {
        self.replica.as_ref().unwrap_or(&self.primary)
    }
}

/// How long a write waits for its invalidations to reach Redis before answering.
const INVALIDATION_FLUSH: std::time::Duration = std::time::Duration::from_millis(250);

impl AppState {
    /// With a shared cache tier: waits until this instance's invalidations are applied in Redis
    /// and published, so a client that reads through another instance after this answer does
    /// not get a value the write made stale from Redis. Without one it returns at once. Redis
    /// being down does not fail the request: L1 entries elsewhere then expire within the
    /// staleness bound.
    pub async fn settle_invalidations(&self) {
        if !self
            .hotel
            .cache()
            .flush_invalidations(INVALIDATION_FLUSH)
            .await
        {
            tracing::warn!(
                "invalidations not yet applied to Redis; other instances may serve the old value until they are"
            );
        }
    }
}
