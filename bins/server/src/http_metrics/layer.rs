//! The tower layer that times, counts and scopes every request.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{extract::Request, response::Response};
use perf_stats::{QueryTracker, Scoped};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{HttpMetrics, series::RouteSeries};

/// Times each request into `http_request_duration_seconds` (by method, route pattern and
/// status) and the dashboard's summary, counts it in `http_requests_in_flight` while it runs
/// (a request dropped unfinished, by a timeout or a client gone, leaves the count too) and runs
/// it in a perf-stats scope labelled `METHOD route` (statement counts and N+1 detection per
/// route).
///
/// Stack it on a router after its routes, so the route pattern is known. axum wraps each of a
/// router's endpoints in the layer's service: an endpoint keeps the series of the first route
/// and method it serves and hands them to the next requests without a lookup (an endpoint that
/// serves another route or method looks them up in the shared table).
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
    tracker: QueryTracker,
}

impl HttpMetricsLayer {
    /// Records into `metrics` and scopes with `tracker`.
    pub fn new(metrics: HttpMetrics, tracker: QueryTracker) -> Self {
        Self { metrics, tracker }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            endpoint: Arc::new(Endpoint {
                metrics: self.metrics.clone(),
                tracker: self.tracker.clone(),
                series: OnceLock::new(),
            }),
        }
    }
}

/// The service of [`HttpMetricsLayer`]. axum clones a route's service for every request: this
/// one clones its inner service and one `Arc`.
#[derive(Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    endpoint: Arc<Endpoint>,
}

/// What one endpoint of the router shares between its requests.
struct Endpoint {
    metrics: HttpMetrics,
    tracker: QueryTracker,
    /// The series of the first route and method this endpoint served.
    series: OnceLock<Arc<RouteSeries>>,
}

impl Endpoint {
    fn series(&self, request: &Request) -> Arc<RouteSeries> {
        let method = request.method();
        let route = super::series::route(request);
        let own = self
            .series
            .get_or_init(|| self.metrics.route_series(method, route));
        if own.is_for(method, route) {
            Arc::clone(own)
        } else {
            self.metrics.route_series(method, route)
        }
    }
}

impl<S> Service<Request> for HttpMetricsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let series = self.endpoint.series(&request);
        series.counters.in_flight.inc();
        let scope = series.scope();
        TrackedFuture {
            inner: self
                .endpoint
                .tracker
                .scoped(scope, self.inner.call(request)),
            in_flight: InFlight {
                series,
                counted: true,
            },
            started,
        }
    }
}

pin_project! {
    /// The inner service's answer, timed and counted when it is ready.
    pub struct TrackedFuture<F: Future> {
        #[pin]
        inner: Scoped<F>,
        in_flight: InFlight,
        started: Instant,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let seconds = this.started.elapsed().as_secs_f64();
            let series = &this.in_flight.series;
            series.observe(response.status().as_u16(), seconds);
        }
        this.in_flight.leave();
        Poll::Ready(result)
    }
}

/// A request in flight: leaves the count when it is answered, or when its future is dropped
/// unanswered.
struct InFlight {
    series: Arc<RouteSeries>,
    counted: bool,
}

impl InFlight {
    fn leave(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.series.counters.in_flight.dec();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.leave();
    }
}
