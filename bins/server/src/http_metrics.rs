//! HTTP request latency by route and status, in the shared Prometheus registry, plus the
//! in-process summary the dashboard shows.
//!
//! [`HttpMetricsLayer`] times every request, counts it in flight and runs it in a perf-stats
//! scope labelled by its method and route. It is on the path of every request, so it does its
//! per-request work without allocating or taking a lock another worker holds: the labels and
//! series of a route are made once and kept by the router's endpoint (`series`), and the
//! dashboard's latency summary has one histogram per worker thread, merged when read
//! (`summary`). docs/PERFORMANCE.md has what this saved.

mod layer;
mod series;
mod summary;

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

pub use self::layer::{HttpMetricsLayer, HttpMetricsService, TrackedFuture};
use self::{
    series::{RouteTable, request_series},
    summary::ShardedSummary,
};
use crate::serving::CloseReason;

/// Latency buckets in seconds: a cached answer takes well under a millisecond, a report can
/// take a second.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// A standard method's name is borrowed: one allocation fewer per series.
    method: std::borrow::Cow<'static, str>,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CloseLabels {
    reason: &'static str,
}

/// Request and connection metrics. Clones share the same series.
#[derive(Clone)]
pub struct HttpMetrics {
    shared: Arc<Shared>,
}

struct Shared {
    shed: Counter,
    connections_open: Gauge,
    connections_closed: Family<CloseLabels, Counter>,
    /// What a request updates besides its own series, shared with every route's series.
    counters: Arc<RequestCounters>,
    routes: RouteTable,
}

/// What requests update, whatever their route. Route series keep a handle on it (and nothing
/// keeps a handle on them from here: no cycle).
struct RequestCounters {
    latency: Family<RequestLabels, Histogram>,
    in_flight: Gauge,
    summary: ShardedSummary,
}

/// Totals since start, for the dashboard.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSummary {
    /// Requests answered.
    pub requests: u64,
    /// Requests being handled now.
    pub in_flight: i64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

impl RequestCounters {
    /// The latency series of one method, route and status (made on first use).
    fn latency_series(&self, method: &axum::http::Method, route: &str, status: u16) -> Histogram {
        self.latency
            .get_or_create(&request_series(method, route, status))
            .clone()
    }
}

impl HttpMetrics {
    /// Creates the metrics and registers them as `http_request_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let latency =
            Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled",
            in_flight.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "http_requests_shed",
            "Requests answered 503 at once because the server was at its limit of requests in flight",
            shed.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        let connections_closed = Family::<CloseLabels, Counter>::default();
        registry.register(
            "http_connections_closed_by_server",
            "Connections the server closed: idle_timeout, header_timeout, busy_timeout, evicted (idle, to make room at the connection limit), refused (at the limit with every connection busy)",
            connections_closed.clone(),
        );
        Self {
            shared: Arc::new(Shared {
                shed,
                connections_open,
                connections_closed,
                counters: Arc::new(RequestCounters {
                    latency,
                    in_flight,
                    summary: ShardedSummary::default(),
                }),
                routes: RouteTable::default(),
            }),
        }
    }

    /// The counter of requests shed at the in-flight limit.
    pub fn shed_counter(&self) -> Counter {
        self.shared.shed.clone()
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.shared.connections_open.inc();
    }

    /// A connection closed, by the server for `reason` or (None) by its client or the protocol.
    /// A refused connection was never counted open.
    pub fn connection_closed(&self, reason: Option<CloseReason>) {
        if reason != Some(CloseReason::Refused) {
            self.shared.connections_open.dec();
        }
        if let Some(reason) = reason {
            self.shared
                .connections_closed
                .get_or_create(&CloseLabels {
                    reason: reason.as_str(),
                })
                .inc();
        }
    }

    /// Requests and latency percentiles since start.
    pub fn summary(&self) -> HttpSummary {
        let counters = &self.shared.counters;
        let (requests, latency_us) = counters.summary.merged();
        let percentile = |q| latency_us.as_ref().map_or(0, |h| h.value_at_quantile(q));
        HttpSummary {
            requests,
            in_flight: counters.in_flight.get(),
            p50_ms: percentile(0.5) as f64 / 1000.0,
            p99_ms: percentile(0.99) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{
        Router,
        body::Body,
        extract::Path,
        http::{Method, Request, StatusCode},
        routing::get,
    };
    use perf_stats::QueryTracker;
    use prometheus_client::encoding::text::encode;
    use tower::ServiceExt;

    use super::*;

    fn app(metrics: &HttpMetrics, tracker: &QueryTracker) -> Router {
        let tracker_in_handler = tracker.clone();
        Router::new()
            .route(
                "/rooms/{id}",
                get(move |Path(id): Path<u32>| {
                    let tracker = tracker_in_handler.clone();
                    async move {
                        // Room 7 runs an N+1; others are found or not.
                        if id == 7 {
                            for _ in 0..6 {
                                tracker.record(
                                    "SELECT * FROM rooms WHERE id = ?",
                                    Duration::from_micros(5),
                                    false,
                                );
                            }
                        }
                        if id < 100 {
                            StatusCode::OK
                        } else {
                            StatusCode::NOT_FOUND
                        }
                    }
                })
                .post(|| async { StatusCode::CREATED }),
            )
            .layer(HttpMetricsLayer::new(metrics.clone(), tracker.clone()))
    }

    fn request(method: Method, uri: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_default()
    }

    /// `http_request_duration_seconds_count` by label set, as /metrics shows it.
    fn counts(registry: &Registry) -> Vec<String> {
        let mut text = String::new();
        encode(&mut text, registry).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("http_request_duration_seconds_count"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn requests_are_counted_by_method_route_pattern_and_status() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let tracker = QueryTracker::new();
        let app = app(&metrics, &tracker);
        let purge = Method::from_bytes(b"PURGE").unwrap_or_default();
        for (method, uri, status) in [
            (Method::GET, "/rooms/1", StatusCode::OK),
            (Method::GET, "/rooms/2", StatusCode::OK),
            (Method::GET, "/rooms/200", StatusCode::NOT_FOUND),
            (Method::GET, "/rooms/3", StatusCode::OK),
            (Method::POST, "/rooms/1", StatusCode::CREATED),
            (Method::DELETE, "/rooms/1", StatusCode::METHOD_NOT_ALLOWED),
            (purge.clone(), "/rooms/1", StatusCode::METHOD_NOT_ALLOWED),
            (Method::DELETE, "/rooms/1", StatusCode::METHOD_NOT_ALLOWED),
            (Method::GET, "/nowhere/9", StatusCode::NOT_FOUND),
            (Method::GET, "/rooms/7", StatusCode::OK),
        ] {
            let response = app.clone().oneshot(request(method, uri)).await;
            assert_eq!(response.map(|r| r.status()).ok(), Some(status), "{uri}");
        }
        assert_eq!(
            counts(&registry),
            [
                r#"http_request_duration_seconds_count{method="DELETE",route="/rooms/{id}",status="405"} 2"#,
                r#"http_request_duration_seconds_count{method="GET",route="/rooms/{id}",status="200"} 4"#,
                r#"http_request_duration_seconds_count{method="GET",route="/rooms/{id}",status="404"} 1"#,
                r#"http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1"#,
                r#"http_request_duration_seconds_count{method="POST",route="/rooms/{id}",status="201"} 1"#,
                r#"http_request_duration_seconds_count{method="PURGE",route="/rooms/{id}",status="405"} 1"#,
            ]
        );
        let summary = metrics.summary();
        assert_eq!((summary.requests, summary.in_flight), (10, 0));
        assert!(summary.p50_ms <= summary.p99_ms);

        // The N+1 of GET /rooms/7 is found under the route's scope label.
        let findings = tracker.report().n_plus_one;
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].scope, "GET /rooms/{id}");
        assert_eq!(findings[0].last_repeats, 6);
    }

    #[tokio::test]
    async fn requests_in_flight_leave_the_count_when_answered_or_dropped() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let (release, released) = tokio::sync::watch::channel(false);
        let app = Router::new()
            .route(
                "/wait",
                get(move || {
                    let mut released = released.clone();
                    async move {
                        let _ = released.wait_for(|done| *done).await;
                        "done"
                    }
                }),
            )
            .layer(HttpMetricsLayer::new(metrics.clone(), QueryTracker::new()));
        let answered = tokio::spawn(app.clone().oneshot(request(Method::GET, "/wait")));
        let dropped = tokio::spawn(app.clone().oneshot(request(Method::GET, "/wait")));
        while metrics.summary().in_flight < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        dropped.abort();
        let _ = dropped.await;
        assert_eq!(metrics.summary().in_flight, 1, "a dropped request left");
        let _ = release.send(true);
        let status = answered.await.ok().and_then(|r| r.ok()).map(|r| r.status());
        assert_eq!(status, Some(StatusCode::OK));
        let summary = metrics.summary();
        assert_eq!(
            (summary.requests, summary.in_flight),
            (1, 0),
            "only answers count"
        );
    }
}
