//! Answers 408 to a request the inner service has not answered within the request timeout,
//! without a timer for the requests it answers at once.
//!
//! tower-http's `TimeoutLayer` registers a `tokio::time::Sleep` with the runtime's timer for
//! every request and removes it when the answer comes: on a cached `GET /api/availability`,
//! answered on its first poll, that registration was the costliest of the middleware's layers
//! (2.5 µs of CPU per request, from 97.8 to 84.1 % of a bare handler's requests per second;
//! `HOTEL_BENCH_MODES=layers cargo bench --bench http_availability`, docs/PERFORMANCE.md).
//! This layer reads the clock when the request comes in and polls the inner future once; only
//! if that poll is pending does it arm a timer, for the same deadline (the arrival plus the
//! timeout), so a slow request is cut exactly when tower-http's layer would cut it.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Wraps a service so that requests it has not answered within `timeout` get a 408.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer {
    timeout: Duration,
}

impl RequestTimeoutLayer {
    /// Requests unanswered after `timeout` are answered 408 Request Timeout.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service made by [`RequestTimeoutLayer`].
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B, ResBody> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The deadline counts from the arrival, as tower-http's does; the timer waits.
        let deadline = Instant::now() + self.timeout;
        RequestTimeoutFuture {
            inner: self.inner.call(request),
            deadline,
            sleep: None,
        }
    }
}

pin_project! {
    /// The inner service's answer, or 408 once the deadline passes.
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        deadline: Instant,
        // Armed at the first poll that finds the answer pending.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F, ResBody, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answer) = this.inner.poll(cx) {
            return Poll::Ready(answer);
        }
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => {
                ready!(sleep.poll(cx));
                let mut response = Response::new(ResBody::default());
                *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
                Poll::Ready(Ok(response))
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use tower::{ServiceExt, service_fn};

    use super::*;

    async fn answer_after(wait: Duration) -> StatusCode {
        let service = RequestTimeoutLayer::new(Duration::from_secs(5)).layer(service_fn(
            move |_: Request<Body>| async move {
                tokio::time::sleep(wait).await;
                Ok::<_, Infallible>(Response::new(Body::empty()))
            },
        ));
        let response = service
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap_or_else(|never| match never {});
        response.status()
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_passes() {
        assert_eq!(answer_after(Duration::ZERO).await, StatusCode::OK);
        assert_eq!(
            answer_after(Duration::from_millis(4_999)).await,
            StatusCode::OK
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_is_a_408_at_the_deadline() {
        let started = Instant::now();
        assert_eq!(
            answer_after(Duration::from_secs(60)).await,
            StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_arrival_not_the_first_poll() {
        let mut service = RequestTimeoutLayer::new(Duration::from_secs(5)).layer(service_fn(
            |_: Request<Body>| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, Infallible>(Response::new(Body::empty()))
            },
        ));
        let started = Instant::now();
        let future = service.call(Request::new(Body::empty()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let response = future.await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
