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

use crate::{auth::Admin, http_metrics::HttpSummary, state::AppState};

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CacheView {
    hits: u64,
    misses: u64,
    hit_ratio: f64,
    entries: u64,
    capacity: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryView {
    operation: String,
    calls: u64,
    p95_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SlowView {
    at: String,
    duration_ms: f64,
    statement: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NPlusOneView {
    at: String,
    count: u32,
    statement: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupView {
    status: String,
    summary: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DashboardData {
    generated_at: String,
    cache: CacheView,
    http: HttpSummary,
    queries: Vec<QueryView>,
    slow_queries: Vec<SlowView>,
    n_plus_one: Vec<NPlusOneView>,
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
                status: report.status.to_string(),
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
