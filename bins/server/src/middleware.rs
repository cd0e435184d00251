//! The layers every request goes through, one function each, outermost first: the request id
//! (made or the client's, and copied onto the response), tracing span and access log, panics
//! turned into 500s, the request timeout, compression negotiation and the body limit.
//!
//! [`crate::app()`] stacks all of them; the bench `http_availability` stacks them one at a time
//! on a bare handler to measure what each costs (docs/PERFORMANCE.md).

use std::{any::Any, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderName, Request, Response, StatusCode},
    response::IntoResponse,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    classify::{ServerErrorsAsFailures, SharedClassifier},
    compression::CompressionLayer,
    trace::{DefaultOnRequest, MakeSpan, OnResponse, TraceLayer},
};

use crate::{
    app::HttpLimits, error::ApiError, request_id::RequestIdLayer,
    request_timeout::RequestTimeoutLayer,
};

/// The header that carries a request's id, taken from the client when it sends one.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The tracing target of the access log: one INFO line per answered request, with the
/// request span's `request_id`, `method` and `path`. Turn it off with
/// `RUST_LOG=info,access_log=off`, or down to errors with `access_log=error`.
pub const ACCESS_LOG_TARGET: &str = "access_log";

/// Gives a request without an `x-request-id` a random (version 4) UUID, and copies the
/// request's id onto its response (see [`crate::request_id`]).
pub fn request_id() -> RequestIdLayer {
    RequestIdLayer
}

/// The request span (`request_id`, `method`, `path`) and the access log.
pub fn trace()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, DefaultOnRequest, AccessLog> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(AccessLog)
}

/// The answer to a panicking handler: 500, with the panic sent to tracing.
type PanicResponse = fn(Box<dyn Any + Send + 'static>) -> axum::response::Response;

/// A panicking handler is answered 500 ("internal error") and logged.
pub fn catch_panic() -> CatchPanicLayer<PanicResponse> {
    fn internal(_: Box<dyn Any + Send + 'static>) -> axum::response::Response {
        tracing::error!("a handler panicked");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
        .into_response()
    }
    CatchPanicLayer::custom(internal as PanicResponse)
}

/// Requests taking longer than [`HttpLimits::request_timeout`] are answered 408 (a timer only
/// for the requests not answered on their first poll: see [`crate::request_timeout`]).
pub fn timeout(limits: &HttpLimits) -> RequestTimeoutLayer {
    RequestTimeoutLayer::new(limits.request_timeout)
}

/// Compresses a response when the client accepts it (gzip) and the body is worth it.
pub fn compression() -> CompressionLayer {
    CompressionLayer::new()
}

/// Bodies larger than [`HttpLimits::max_body_bytes`] are answered 413.
pub fn body_limit(limits: &HttpLimits) -> DefaultBodyLimit {
    DefaultBodyLimit::max(limits.max_body_bytes)
}

/// `bits` as a version 4 (random) UUID in its hyphenated lowercase form: the ids of requests
/// that come without one, as `uuid::Uuid::new_v4` makes them, but drawn from the thread's
/// random generator (rand's `ThreadRng`, a CSPRNG seeded by the OS) instead of a `getrandom`
/// system call per request, and written without formatting machinery. tower-http's
/// `MakeRequestUuid` spent a system call and two allocations per request here
/// (docs/PERFORMANCE.md).
pub(crate) fn uuid_v4_text(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Version 4 in the 13th hex digit, variant 10xx in the 17th: RFC 9562, section 5.4.
    let bits = (bits & 0xFFFF_FFFF_FFFF_4FFF_BFFF_FFFF_FFFF_FFFF) | 0x4000_8000_0000_0000_0000;
    let bytes = bits.to_be_bytes();
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xF)];
        at += 2;
    }
    text
}

/// The span of one request: `request_id`, `method` and `path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> tracing::Span {
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", request_id, method = %request.method(), path = %request.uri().path())
    }
}

/// The access-log line of one answered request: 5xx at ERROR, everything else at INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLog;

impl<B> OnResponse<B> for AccessLog {
    fn on_response(self, response: &Response<B>, latency: Duration, _: &tracing::Span) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if response.status().is_server_error() {
            tracing::error!(target: ACCESS_LOG_TARGET, status, latency_ms, "request answered");
        } else {
            tracing::info!(target: ACCESS_LOG_TARGET, status, latency_ms, "request answered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid_v4(bits: u128) -> String {
        String::from_utf8_lossy(&uuid_v4_text(bits)).into_owned()
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        assert_eq!(uuid_v4(0), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4(u128::MAX), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let a = uuid_v4(rand::random());
        let b = uuid_v4(rand::random());
        assert_ne!(a, b, "two ids drawn at random differ");
        let text = a.as_str();
        assert_eq!(text.len(), 36);
        assert_eq!(text.as_bytes()[14], b'4', "version 4: {text}");
        assert!(
            matches!(text.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "variant 10xx: {text}"
        );
    }
}
