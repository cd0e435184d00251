//! What every handler shares.

use std::sync::Arc;

use db_connect::ReadRouter;
use optimized_queries::HotelCache;
use perf_stats::{MetricsRegistry, QueryTracker};
use sea_orm::DatabaseConnection;

use crate::http_metrics::HttpMetrics;

/// The server's shared state. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// The primary database: every write, and reads that must see their own writes.
    pub primary: DatabaseConnection,
    /// Where reports go: a streaming standby when there is one and it has replayed every
    /// write that returned before the report began, the primary otherwise.
    pub reads: ReadRouter,
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
    /// Where reports and other heavy reads go (see [`AppState::reads`]).
    pub fn reports(&self) -> &ReadRouter {
        &self.reads
    }
}
