//! HTTP request latency by route and status, in the shared Prometheus registry, plus the
//! in-process summary the dashboard shows.

use std::{borrow::Cow, sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use hdrhistogram::Histogram as Hdr;
use parking_lot::Mutex;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{serving::CloseReason, state::AppState};

/// Latency buckets in seconds: a cached answer takes well under a millisecond, a report can
/// take a second.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// A standard method's name is borrowed: one allocation fewer per request.
    method: Cow<'static, str>,
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
    latency: Family<RequestLabels, Histogram>,
    in_flight: Gauge,
    shed: Counter,
    connections_open: Gauge,
    connections_closed: Family<CloseLabels, Counter>,
    summary: Arc<Mutex<Summary>>,
}

struct Summary {
    requests: u64,
    latency_us: Hdr<u64>,
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
        // Microseconds from 1 µs to 10 min at 3 significant digits: the bounds cannot be invalid.
        #[allow(clippy::expect_used)]
        let latency_us = Hdr::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Self {
            latency,
            in_flight,
            shed,
            connections_open,
            connections_closed,
            summary: Arc::new(Mutex::new(Summary {
                requests: 0,
                latency_us,
            })),
        }
    }

    fn observe(&self, labels: &RequestLabels, seconds: f64) {
        self.latency.get_or_create(labels).observe(seconds);
        let mut summary = self.summary.lock();
        summary.requests += 1;
        summary.latency_us.saturating_record((seconds * 1e6) as u64);
    }

    /// The counter of requests shed at the in-flight limit.
    pub fn shed_counter(&self) -> Counter {
        self.shed.clone()
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// A connection closed, by the server for `reason` or (None) by its client or the protocol.
    /// A refused connection was never counted open.
    pub fn connection_closed(&self, reason: Option<CloseReason>) {
        if reason != Some(CloseReason::Refused) {
            self.connections_open.dec();
        }
        if let Some(reason) = reason {
            self.connections_closed
                .get_or_create(&CloseLabels {
                    reason: reason.as_str(),
                })
                .inc();
        }
    }

    /// Requests and latency percentiles since start.
    pub fn summary(&self) -> HttpSummary {
        let summary = self.summary.lock();
        HttpSummary {
            requests: summary.requests,
            in_flight: self.in_flight.get(),
            p50_ms: summary.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: summary.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// A request's route pattern (never the raw path, so ids do not make new series).
fn route(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned())
}

/// The perf-stats scope of a request (`perf_stats::QueryScopeLayer`): its method and route
/// pattern, e.g. `GET /api/rooms/{id}`.
pub fn scope_label(request: &Request) -> String {
    format!("{} {}", request.method(), route(request))
}

/// Middleware: times each request and labels it with its route pattern.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route(&request);
    state.http.in_flight.inc();
    // Decrements even when the request future is dropped (client gone, timeout).
    let _in_flight = InFlight(&state.http.in_flight);
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.http.observe(&labels, started.elapsed().as_secs_f64());
    response
}

/// The method's name, borrowed for the standard ones.
fn method_label(method: &Method) -> Cow<'static, str> {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    const NAMES: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .iter()
        .position(|standard| standard == method)
        .map_or_else(
            || Cow::Owned(method.as_str().to_owned()),
            |i| Cow::Borrowed(NAMES[i]),
        )
}

struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
