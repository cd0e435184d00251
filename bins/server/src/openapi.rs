//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the types they read and write; [`app`](crate::app::app) serves it at
//! `/api/openapi.json` and a browsable page at `/api/docs`.
//!
//! The error answers every route shares are described once here, as response groups a
//! handler's attribute lists beside its own answers.

use utoipa::{
    IntoResponses, Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::error::Body as ErrorBody;

/// The name of the bearer-token security scheme the authenticated routes require.
pub const BEARER: &str = "bearerAuth";

/// The document's fixed parts: title, tags, security scheme. The paths are added by the
/// router (see [`crate::app::app`]), from the handlers it routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hotel-server",
        description = "The hotel booking API. JSON bodies are camelCase; every error answers \
            `{\"error\": {\"code\", \"message\"}}`; dates are `YYYY-MM-DD` and a stay \
            `[startDate, endDate)` ends on its check-out day. Under load any `/api` route may \
            answer 503 with `Retry-After`; a request that takes longer than the request timeout \
            is answered 408.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "catalog", description = "Room types and availability (public)"),
        (name = "bookings", description = "A guest's bookings (bearer token)"),
        (name = "admin", description = "Inventory, reports, cache, query statistics and backups (administrator token)"),
        (name = "operations", description = "Health and metrics probes"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-token scheme (tokens come from `hotel-server token create`).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `Authorization: Bearer htk_…` (`hotel-server token create`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Answers any `/api` route may give whatever the request.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes answers; never built.
pub enum Refusals {
    /// The request took longer than the request timeout (no body).
    #[response(
        status = 408,
        description = "The request took longer than the request timeout"
    )]
    Timeout,
    /// Too many requests in flight.
    #[response(
        status = 503,
        description = "The server is at its limit of requests in flight: retry after the given seconds",
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
    )]
    Overloaded(#[to_schema] ErrorBody<'static>),
    /// A failure of the server; the cause is in its logs.
    #[response(
        status = 500,
        description = "Internal error (the cause is logged, not sent)"
    )]
    Internal(#[to_schema] ErrorBody<'static>),
}

/// Answers of a route whose query string, path or body is malformed or out of range.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes answers; never built.
pub enum InvalidInput {
    /// The input is malformed or out of range; the message says which part.
    #[response(
        status = 400,
        description = "Malformed or out-of-range input (`bad_request`, `invalid_query`, `invalid_path`, `invalid_json`, `invalid_body`)"
    )]
    BadRequest(#[to_schema] ErrorBody<'static>),
}

/// Answers of a route that reads a JSON body.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes answers; never built.
pub enum BodyRefusals {
    /// The body is over the size limit.
    #[response(
        status = 413,
        description = "The body is larger than the server accepts"
    )]
    TooLarge(#[to_schema] ErrorBody<'static>),
    /// The body is not sent as JSON.
    #[response(
        status = 415,
        description = "The body must be sent with `Content-Type: application/json`"
    )]
    NotJson(#[to_schema] ErrorBody<'static>),
}

/// Answers of a route that needs a token.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes answers; never built.
pub enum Unauthenticated {
    /// No token, a malformed header, or an unknown or revoked token.
    #[response(
        status = 401,
        description = "Missing, malformed, unknown or revoked bearer token"
    )]
    Unauthorized(#[to_schema] ErrorBody<'static>),
}

/// Answers of an administrator's route.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes answers; never built.
pub enum NotAdmin {
    /// No token, a malformed header, or an unknown or revoked token.
    #[response(
        status = 401,
        description = "Missing, malformed, unknown or revoked bearer token"
    )]
    Unauthorized(#[to_schema] ErrorBody<'static>),
    /// A valid token of a guest.
    #[response(status = 403, description = "The token is not an administrator's")]
    Forbidden(#[to_schema] ErrorBody<'static>),
}
