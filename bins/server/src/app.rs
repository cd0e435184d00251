//! The router: routes, then the middleware every request goes through.

use std::time::Duration;

use axum::{Router, http::StatusCode, routing::get};
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    error::ApiError,
    http_metrics,
    load_shed::InFlightLimitLayer,
    middleware,
    openapi::ApiDoc,
    routes,
    serving::{ConnectionLimits, descriptors},
    state::AppState,
};

/// Limits on requests and connections. The defaults are the command line's.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Requests taking longer (reading the body included) are answered 408.
    pub request_timeout: Duration,
    /// Larger bodies are answered 413.
    pub max_body_bytes: usize,
    /// Requests handled at once; more are answered 503 with `Retry-After` at once (`/healthz`
    /// and `/metrics` are never refused).
    pub max_requests_in_flight: usize,
    /// Connections open at once (kept below the descriptor limit by [`HttpLimits::fitted`]).
    pub max_connections: usize,
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and none arriving is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
            max_requests_in_flight: 512,
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl HttpLimits {
    /// These limits fitted to a descriptor limit of `soft_limit` (see
    /// [`descriptors::soft_limit`]): connections below it with room for the database, requests
    /// in flight at most half the connections, so that connections busy with requests never
    /// fill the table and a new one (a health check) can always take an idle one's place.
    pub fn fitted(self, soft_limit: Option<u64>) -> Self {
        let max_connections = descriptors::connections_within(self.max_connections, soft_limit);
        let max_requests_in_flight = self
            .max_requests_in_flight
            .clamp(1, (max_connections / 2).max(1));
        if max_connections < self.max_connections
            || max_requests_in_flight < self.max_requests_in_flight
        {
            tracing::warn!(
                max_connections,
                max_requests_in_flight,
                open_files_limit = soft_limit,
                "connection limits lowered to fit the open-files limit (raise `ulimit -n` to allow more)"
            );
        }
        Self {
            max_connections,
            max_requests_in_flight,
            ..self
        }
    }

    /// The per-connection deadlines and cap these limits imply. A connection may stay busy with
    /// one request for the request timeout plus the header-read timeout (to write the 408).
    pub fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            busy_timeout: self.request_timeout + self.header_read_timeout,
        }
    }
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    let (probes, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::metrics))
        .split_for_parts();
    let (api, api_document) = OpenApiRouter::new()
        .routes(routes!(routes::catalog::room_types))
        .routes(routes!(routes::catalog::availability))
        .routes(routes!(routes::catalog::batch))
        .routes(routes!(routes::bookings::create))
        .routes(routes!(routes::bookings::mine))
        .routes(routes!(routes::bookings::show))
        .routes(routes!(routes::bookings::cancel))
        .routes(routes!(routes::admin::inventory))
        .routes(routes!(routes::admin::statistics))
        .routes(routes!(routes::admin::occupancy))
        .routes(routes!(routes::admin::cache_stats))
        .routes(routes!(routes::admin::cache_clear))
        .routes(routes!(routes::admin::queries))
        .routes(routes!(routes::admin::backups))
        .routes(routes!(routes::dashboard::data))
        .split_for_parts();
    document.merge(api_document);
    // Every request goes through the same layers, outermost first: request id (copied onto the
    // response), tracing span and access log, panics turned into 500s, the request timeout,
    // compression negotiation, the body limit, then latency by route and status with requests
    // in flight and each request in a perf-stats scope (statement counts and N+1 detection per
    // route). They are given to the router in one `layer` call per group of
    // routes: axum boxes each endpoint once per call (a boxed service cloned and a boxed future
    // per request and call), so one call instead of three saves two of each on every request.
    let layers = ServiceBuilder::new()
        .layer(middleware::request_id())
        .layer(middleware::trace())
        .layer(middleware::catch_panic())
        .layer(middleware::timeout(&limits))
        .layer(middleware::compression())
        .layer(middleware::body_limit(&limits))
        .layer(http_metrics::HttpMetricsLayer::new(
            state.http.clone(),
            state.tracker.clone(),
        ));
    let api = api
        // The document at /api/openapi.json and Swagger UI (served from the binary) at /api/docs.
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", document))
        .route("/admin/dashboard", get(routes::dashboard::page))
        .route(
            "/admin/dashboard/dashboard.js",
            get(routes::dashboard::script),
        )
        .route(
            "/admin/dashboard/dashboard.css",
            get(routes::dashboard::style),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        // Probes are never shed: a load balancer must see an overloaded instance answer.
        .layer(layers.clone().layer(InFlightLimitLayer::new(
            limits.max_requests_in_flight,
            state.http.shed_counter(),
        )));
    probes.layer(layers).merge(api).with_state(state)
}
