//! The labels and series of each route, made once: a request finds its route's by the router's
//! endpoint it went through, and its status's series among the few that route has answered.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
};
use parking_lot::RwLock;
use prometheus_client::metrics::histogram::Histogram;

use super::{HttpMetrics, RequestCounters, RequestLabels};

/// The route label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// A request's route pattern (never the raw path, so ids do not make new series).
pub(super) fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

/// The label set of one latency series.
pub(super) fn request_series(method: &Method, route: &str, status: u16) -> RequestLabels {
    RequestLabels {
        method: method_label(method),
        route: route.to_owned(),
        status,
    }
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

/// What one method on one route labels and counts.
pub(super) struct RouteSeries {
    route: Box<str>,
    method: Method,
    /// The perf-stats scope label, `GET /api/rooms/{id}`, shared by every request.
    scope: Arc<str>,
    pub(super) counters: Arc<RequestCounters>,
    /// The first status answered, found without a lock (a route answers 200 nearly always).
    first: OnceLock<(u16, Histogram)>,
    /// Every other status answered.
    others: RwLock<Vec<(u16, Histogram)>>,
}

impl RouteSeries {
    fn new(metrics: &HttpMetrics, method: &Method, route: &str) -> Self {
        Self {
            route: route.into(),
            method: method.clone(),
            scope: Arc::from(format!("{method} {route}")),
            counters: Arc::clone(&metrics.shared.counters),
            first: OnceLock::new(),
            others: RwLock::default(),
        }
    }

    /// Whether these are the series of `method` on `route`.
    pub(super) fn is_for(&self, method: &Method, route: &str) -> bool {
        *self.route == *route && self.method == *method
    }

    /// The perf-stats scope label.
    pub(super) fn scope(&self) -> Arc<str> {
        Arc::clone(&self.scope)
    }

    /// Records one request answered with `status` after `seconds`.
    pub(super) fn observe(&self, status: u16, seconds: f64) {
        let (first_status, first) = self.first.get_or_init(|| {
            let series = self
                .counters
                .latency_series(&self.method, &self.route, status);
            (status, series)
        });
        if *first_status == status {
            first.observe(seconds);
        } else {
            self.other(status).observe(seconds);
        }
        self.counters.summary.record(seconds);
    }

    fn other(&self, status: u16) -> Histogram {
        let find = |others: &[(u16, Histogram)]| {
            others
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, series)| series.clone())
        };
        if let Some(series) = find(&self.others.read()) {
            return series;
        }
        let mut others = self.others.write();
        find(&others).unwrap_or_else(|| {
            let series = self
                .counters
                .latency_series(&self.method, &self.route, status);
            others.push((status, series.clone()));
            series
        })
    }
}

/// Every route's series, by route pattern then method: looked up when an endpoint of the router
/// sees its first request (or, rarely, a request for another route or method than its first).
#[derive(Default)]
pub(super) struct RouteTable {
    routes: RwLock<HashMap<Box<str>, Vec<Arc<RouteSeries>>>>,
}

impl HttpMetrics {
    /// The series of `method` on `route`, made on first use.
    pub(super) fn route_series(&self, method: &Method, route: &str) -> Arc<RouteSeries> {
        let table = &self.shared.routes.routes;
        let find = |routes: &HashMap<Box<str>, Vec<Arc<RouteSeries>>>| {
            routes
                .get(route)
                .and_then(|methods| methods.iter().find(|s| s.method == *method))
                .map(Arc::clone)
        };
        if let Some(series) = find(&table.read()) {
            return series;
        }
        let mut routes = table.write();
        if let Some(series) = find(&routes) {
            return series;
        }
        let series = Arc::new(RouteSeries::new(self, method, route));
        routes
            .entry(route.into())
            .or_default()
            .push(Arc::clone(&series));
        series
    }
}
