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
