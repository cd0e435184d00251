//! What every handler shares.

use std::{ops::Deref, sync::Arc};

use db_connect::ReadRouter;
use optimized_queries::HotelCache;
use perf_stats::{MetricsRegistry, QueryTracker};
use sea_orm::DatabaseConnection;

use crate::http_metrics::HttpMetrics;

/// The server's shared state: one `Arc` around [`Shared`], whose fields it derefs to
/// (`state.primary`, `state.hotel`, ...).
///
/// axum clones the state about three times per request (the route's service, the handler's
/// call, the `State` extractor). Cloning the fields themselves was about fifteen reference
/// counts, each a cache line both workers write, and the largest single cost of a cached
/// request in the server's handler (docs/PERFORMANCE.md); a clone of this is one.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
pub struct Shared {
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
    /// The state holding `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Where reports and other heavy reads go (see [`Shared::reads`]).
    pub fn reports(&self) -> &ReadRouter {
        &self.0.reads
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
