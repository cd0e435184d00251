//! One error type for every handler: a 4xx says what is wrong, a 5xx says "internal error" and
//! sends the cause to the logs. A database that cannot be reached is a 503 with `Retry-After`,
//! never a 500: the request was fine, and a retry a moment later may succeed.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An error answered to the client as `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After`, on errors that a later retry may not meet.
    retry_after: Option<u32>,
}

/// What a client waiting out a database outage is asked to wait before retrying.
const DATABASE_RETRY_AFTER_SECONDS: u32 = 1;

/// Every error's body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub struct Body<'a> {
    error: Detail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct Detail<'a> {
    /// Stable, for programs: `bad_request`, `invalid_json`, `invalid_body`, `invalid_query`,
    /// `invalid_path`, `unauthorized`, `forbidden`, `not_found`, `not_available`, `conflict`,
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`,
    /// `overloaded`, `internal`.
    #[schema(example = "bad_request")]
    code: &'a str,
    /// For a person: what is wrong and how to fix it.
    message: &'a str,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed or its values are out of range.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: valid credentials without the right role.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing there (or nothing the caller may see).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: the cause is logged, the client learns nothing of it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %backup::error_chain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 503 with `Retry-After`: the database cannot be reached (down, restarting, or no
    /// connection free in time). The cause is logged.
    pub fn database_unavailable(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::warn!(error = %backup::error_chain(cause), "database unavailable");
        Self {
            retry_after: Some(DATABASE_RETRY_AFTER_SECONDS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable at the moment; retry shortly",
            )
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<optimized_queries::Error> for ApiError {
    fn from(err: optimized_queries::Error) -> Self {
        use optimized_queries::Error as E;
        match err {
            E::NotAvailable { .. } => {
                Self::new(StatusCode::CONFLICT, "not_available", err.to_string())
            }
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            E::NotFound { .. } => Self::not_found(err.to_string()),
            E::InvalidRange(_) | E::InvalidInput(_) => Self::bad_request(err.to_string()),
            E::Database(ref db) if db_connect::is_unavailable(db) => {
                Self::database_unavailable(&err)
            }
            // Only while the database cannot be reached; a retry with the same
            // Idempotency-Key finds out whether the booking was made.
            E::CommitUncertain(_) => Self::database_unavailable(&err),
            other => Self::internal(&other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if db_connect::is_unavailable(&err) {
            Self::database_unavailable(&err)
        } else {
            Self::internal(&err)
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(ref inner)
                if inner.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            }
            JsonRejection::JsonSyntaxError(ref inner) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("malformed JSON: {}", inner.body_text()),
            ),
            JsonRejection::JsonDataError(ref inner) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                inner.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ),
            ),
            other => Self::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text().replace(
                "Failed to deserialize query string: ",
                "invalid query string: ",
            ),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            rejection.body_text(),
        )
    }
}

/// JSON body extractor whose rejections are [`ApiError`]s.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query-string extractor whose rejections are [`ApiError`]s.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are [`ApiError`]s.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
