//! `hotel-server`: the booking API that composes the workspace's libraries.
//!
//! - [`build_state`] connects, migrates behind a verified backup, instruments the
//!   connections with perf-stats, builds the cache and pre-warms it;
//! - [`app()`] is the router with its middleware (request ids, tracing, timeouts, body limit,
//!   compression, metrics, N+1 scopes);
//! - [`serve`] serves on an already bound listener until a shutdown future completes,
//!   so tests run the real server on port 0; [`serving`] keeps every connection under a
//!   deadline and their number under a cap, and [`load_shed`] answers 503 past the limit of
//!   requests in flight;
//! - [`openapi`] describes the API; the document is generated from the handlers and served at
//!   `/api/openapi.json`, with Swagger UI at `/api/docs`.

pub mod app;
pub mod auth;
pub mod cache_report;
pub mod config;
pub mod demo;
pub mod error;
pub mod http_metrics;
pub mod json_body;
pub mod load_shed;
pub mod middleware;
pub mod openapi;
pub mod replica_metrics;
pub mod request_id;
pub mod request_timeout;
pub mod routes;
pub mod serving;
pub mod startup;
pub mod state;
pub mod views;

pub use app::{HttpLimits, app};
/// API tokens (issued, looked up and revoked by the data layer).
pub use optimized_queries::tokens;
pub use startup::{Settings, build_state, serve};
pub use state::AppState;
