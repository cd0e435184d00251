//! The router: routes, then the middleware every request goes through.

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, StatusCode},
    middleware,
    response::IntoResponse,
    routing::{get, post, put},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{error::ApiError, http_metrics, routes, state::AppState};

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Requests taking longer are answered 408.
    pub request_timeout: Duration,
    /// Larger bodies are answered 413.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application over `state`.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    let api = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::health::metrics))
        .route("/api/room-types", get(routes::catalog::room_types))
        .route("/api/availability", get(routes::catalog::availability))
        .route("/api/availability/batch", post(routes::catalog::batch))
        .route("/api/bookings", post(routes::bookings::create))
        .route("/api/me/bookings", get(routes::bookings::mine))
        .route("/api/bookings/{id}", get(routes::bookings::show))
        .route("/api/bookings/{id}/cancel", post(routes::bookings::cancel))
        .route("/api/admin/inventory", put(routes::admin::inventory))
        .route(
            "/api/admin/reports/statistics",
            get(routes::admin::statistics),
        )
        .route(
            "/api/admin/reports/occupancy",
            get(routes::admin::occupancy),
        )
        .route("/api/admin/cache/stats", get(routes::admin::cache_stats))
        .route("/api/admin/cache/clear", post(routes::admin::cache_clear))
        .route("/api/admin/queries", get(routes::admin::queries))
        .route("/api/admin/backups", get(routes::admin::backups))
        .route("/api/admin/dashboard", get(routes::dashboard::data))
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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http_metrics::track,
        ))
        .with_state(state);

    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &axum::http::Request<_>| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", request_id, method = %request.method(), path = %request.uri().path())
                    })
                    .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("a handler panicked");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
            }))
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
            .layer(CompressionLayer::new())
            .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
    )
}
