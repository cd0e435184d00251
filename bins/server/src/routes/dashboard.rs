//! The live performance dashboard: a static page served from the binary, and the data it polls.

use axum::{
    Json,
    extract::State,
    http::header,
    response::{Html, IntoResponse, Response},
};
use chrono::Utc;
use perf_stats::SortKey;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::Admin,
    http_metrics::HttpSummary,
    openapi::{NotAdmin, Refusals},
    state::AppState,
    views::HealthStatus,
};

const PAGE: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// `GET /admin/dashboard`: the page. It asks for the admin token itself.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /admin/dashboard/dashboard.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /admin/dashboard/dashboard.css`.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The cache at a glance.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardCache)]
pub struct CacheView {
    /// Lookups answered from the cache.
    hits: u64,
    /// Lookups that loaded.
    misses: u64,
    /// `hits / (hits + misses)`, 0 without lookups.
    hit_ratio: f64,
    /// Entries held.
    entries: u64,
    /// Most entries held.
    capacity: u64,
}

/// One of the slowest query shapes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardQuery)]
pub struct QueryView {
    /// The shape (its SQL, shortened).
    operation: String,
    /// Executions.
    calls: u64,
    /// 95th percentile, in ms.
    p95_ms: f64,
}

/// A recent slow statement.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardSlowQuery)]
pub struct SlowView {
    /// When it finished (`HH:MM:SS`, UTC).
    at: String,
    /// How long it took, in ms.
    duration_ms: f64,
    /// The statement, shortened.
    statement: String,
}

/// A recent N+1 finding.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardNPlusOne)]
pub struct NPlusOneView {
    /// When it was last seen (`HH:MM:SS`, UTC).
    at: String,
    /// Repetitions in that request.
    count: u32,
    /// The repeated shape and its route.
    statement: String,
}

/// The backups at a glance.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardBackups)]
pub struct BackupView {
    /// The worst check's status.
    status: HealthStatus,
    /// One line, as a Nagios plugin prints it.
    summary: String,
}

/// One snapshot of everything the dashboard draws.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardData {
    /// When it was taken.
    generated_at: String,
    /// The cache.
    cache: CacheView,
    /// Requests since start.
    http: HttpSummary,
    /// The slowest shapes by p99.
    queries: Vec<QueryView>,
    /// The most recent slow statements.
    slow_queries: Vec<SlowView>,
    /// The most recent N+1 findings.
    n_plus_one: Vec<NPlusOneView>,
    /// The backups, when a backup directory is configured.
    backups: Option<BackupView>,
}

fn short(sql: &str) -> String {
    const MAX: usize = 160;
    match sql.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &sql[..cut]),
        None => sql.to_owned(),
    }
}

/// `GET /api/admin/dashboard`: one snapshot of everything the page draws.
#[utoipa::path(
    get,
    path = "/api/admin/dashboard",
    tag = "admin",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "What the dashboard draws", body = DashboardData),
        NotAdmin,
        Refusals,
    )
)]
pub async fn data(State(state): State<AppState>, _: Admin) -> Response {
    let stats = state.hotel.cache().stats();
    let report = state.tracker.report();
    let queries = report
        .top(SortKey::P99, 12)
        .into_iter()
        .map(|q| QueryView {
            operation: short(&q.fingerprint),
            calls: q.calls,
            p95_ms: q.p95.as_secs_f64() * 1000.0,
        })
        .collect();
    let slow_queries = report
        .slow_queries
        .iter()
        .take(20)
        .map(|q| SlowView {
            at: q.at.format("%H:%M:%S").to_string(),
            duration_ms: q.duration.as_secs_f64() * 1000.0,
            statement: short(&q.sql),
        })
        .collect();
    let n_plus_one = report
        .n_plus_one
        .iter()
        .take(20)
        .map(|n| NPlusOneView {
            at: n.last_seen.format("%H:%M:%S").to_string(),
            count: n.last_repeats,
            statement: format!("{} ({})", short(&n.fingerprint), n.scope),
        })
        .collect();
    let backups = match state.backups.clone() {
        Some(repo) => {
            let report = backup::monitor::assess(
                &repo,
                &backup::monitor::HealthPolicy::default(),
                Utc::now(),
            )
            .await;
            Some(BackupView {
                status: report.status.into(),
                summary: report.nagios_line(),
            })
        }
        None => None,
    };
    Json(DashboardData {
        generated_at: Utc::now().to_rfc3339(),
        cache: CacheView {
            hits: stats.hits,
            misses: stats.misses,
            hit_ratio: stats.hit_ratio,
            entries: stats.entries,
            capacity: stats.capacity,
        },
        http: state.http.summary(),
        queries,
        slow_queries,
        n_plus_one,
        backups,
    })
    .into_response()
}
