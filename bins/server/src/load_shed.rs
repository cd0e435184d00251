//! A cap on requests in flight: past it, a request is answered 503 with `Retry-After` at once
//! instead of queueing for a database connection without bound.
//!
//! tower's `ConcurrencyLimit` waits for a permit (and `LoadShed` turns the wait into an error
//! that needs one more layer to become a response); this layer only counts, with one atomic
//! add and one subtract per request, and answers the overflow itself.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use tower::{Layer, Service};

use crate::error::ApiError;

/// Seconds a shed client is told to wait.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

/// Caps the requests in flight through the services it wraps (they share one count).
#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    /// One `Arc` for everything: axum clones a route's service for every request.
    shared: Arc<Limit>,
}

#[derive(Debug)]
struct Limit {
    limit: usize,
    in_flight: AtomicUsize,
    shed: Counter,
}

impl InFlightLimitLayer {
    /// At most `limit` requests at once; every one refused is counted in `shed`.
    pub fn new(limit: usize, shed: Counter) -> Self {
        Self {
            shared: Arc::new(Limit {
                limit: limit.max(1),
                in_flight: AtomicUsize::new(0),
                shed,
            }),
        }
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`InFlightLimitLayer`].
#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    layer: InFlightLimitLayer,
}

/// Holds one place among the requests in flight.
#[derive(Debug)]
struct Place(Arc<Limit>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> Service<Request> for InFlightLimit<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = &self.layer.shared;
        if shared.in_flight.fetch_add(1, Ordering::Relaxed) >= shared.limit {
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            shared.shed.inc();
            return InFlightFuture {
                state: State::Shed {
                    limit: shared.limit,
                },
            };
        }
        InFlightFuture {
            state: State::Admitted {
                inner: self.inner.call(request),
                place: Place(Arc::clone(shared)),
            },
        }
    }
}

pin_project! {
    /// The inner service's answer, or 503 for a request over the cap.
    pub struct InFlightFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        // Admitted: the place is given back when the answer is ready (or dropped).
        Admitted { #[pin] inner: F, place: Place },
        // Over the cap.
        Shed { limit: usize },
    }
}

impl<F, E> Future for InFlightFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Admitted { inner, .. } => inner.poll(cx),
            StateProjection::Shed { limit } => Poll::Ready(Ok(overloaded(*limit))),
        }
    }
}

fn overloaded(limit: usize) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!("the server is answering its limit of {limit} requests at once; retry shortly"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Router, body::Body, routing::get};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn requests_over_the_cap_get_503_with_retry_after_and_places_come_back() {
        let (release, released) = tokio::sync::watch::channel(false);
        let shed = Counter::default();
        let app = Router::new()
            .route(
                "/",
                get(move || {
                    let mut released = released.clone();
                    async move {
                        let _ = released.wait_for(|done| *done).await;
                        "done"
                    }
                }),
            )
            .layer(InFlightLimitLayer::new(2, shed.clone()));
        let request = || Request::builder().uri("/").body(Body::empty()).unwrap();
        let first = tokio::spawn(app.clone().oneshot(request()));
        let second = tokio::spawn(app.clone().oneshot(request()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(third.headers()[RETRY_AFTER], "1");
        assert_eq!(shed.get(), 1);
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
        let again = app.oneshot(request()).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK, "places were given back");
    }
}
