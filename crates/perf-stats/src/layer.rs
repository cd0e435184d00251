//! A tower [`Layer`] that runs each request of a service in a [`QueryTracker::scope`], so the
//! statements a request runs are counted and checked for N+1 patterns under a label (its
//! route), without wrapping every handler.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

use crate::{QueryTracker, Scoped};

/// Wraps a service so each request runs in a [`QueryTracker::scope`] labelled by `label`.
///
/// The layer knows nothing of HTTP: `label` turns the service's request type into the scope's
/// label (for an HTTP service, its method and route pattern; never the raw path, whose ids
/// would make a label per request). It may return a `String`, a `&'static str` or an
/// `Arc<str>`: a label function that hands out one shared `Arc<str>` per route allocates
/// nothing per request, and neither does the layer (its future is not boxed).
///
/// # Examples
///
/// An axum service adds one line, after its routes (so the route pattern is known), and its
/// handlers stay as they are; `examples/outside_service.rs` in the repository is a whole one:
///
/// ```text
/// .layer(QueryScopeLayer::new(tracker.clone(), |request: &axum::extract::Request| {
///     let route = request.extensions().get::<axum::extract::MatchedPath>();
///     format!("{} {}", request.method(), route.map_or("-", |r| r.as_str()))
/// }))
/// ```
///
/// With any tower service:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use perf_stats::{QueryScopeLayer, QueryTracker};
/// use sea_orm::{ConnectionTrait, Statement};
/// use tower_layer::Layer;
/// use tower_service::Service;
///
/// let tracker = QueryTracker::new();
/// let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
/// tracker.attach(&mut db);
///
/// // A "service" that loads ten rows one at a time: an N+1.
/// let handler = tower::service_fn(move |room_type: u32| {
///     let db = db.clone();
///     async move {
///         for night in 0..10 {
///             let sql = "SELECT ? AS room_type, ? AS night";
///             let values = [room_type.into(), night.into()];
///             db.query_one_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, values))
///                 .await?;
///         }
///         Ok::<_, sea_orm::DbErr>(())
///     }
/// });
/// let mut service = QueryScopeLayer::new(tracker.clone(), |_: &u32| "GET /availability".to_owned())
///     .layer(handler);
/// service.call(1).await?;
///
/// let report = tracker.report();
/// assert_eq!(report.n_plus_one[0].scope, "GET /availability");
/// assert_eq!(report.n_plus_one[0].last_repeats, 10);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct QueryScopeLayer<L> {
    tracker: QueryTracker,
    label: L,
}

impl<L> QueryScopeLayer<L> {
    /// A layer that scopes each request with `tracker`, labelled by `label(&request)`.
    pub fn new(tracker: QueryTracker, label: L) -> Self {
        Self { tracker, label }
    }
}

impl<S, L: Clone> Layer<S> for QueryScopeLayer<L> {
    type Service = QueryScopeService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        QueryScopeService {
            inner,
            tracker: self.tracker.clone(),
            label: self.label.clone(),
        }
    }
}

/// The service [`QueryScopeLayer`] makes: the inner service with each call in a scope.
#[derive(Debug, Clone)]
pub struct QueryScopeService<S, L> {
    inner: S,
    tracker: QueryTracker,
    label: L,
}

impl<S, L, Request, T> Service<Request> for QueryScopeService<S, L>
where
    S: Service<Request>,
    L: Fn(&Request) -> T,
    T: Into<Arc<str>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let label = (self.label)(&request).into();
        self.tracker.scoped(label, self.inner.call(request))
    }
}
