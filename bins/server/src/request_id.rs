//! Gives every request an id in `x-request-id` (the client's when it sends one, a random
//! version 4 UUID otherwise) and copies it onto the response: what tower-http's
//! `SetRequestIdLayer` and `PropagateRequestIdLayer` did together, in one layer.
//!
//! Two layers were two nested services and futures on every request; the pair also kept the id
//! as a request extension that nothing read (its first insertion allocates the request's
//! extension map) and copied the header between them, which turns the id's bytes into a
//! shared buffer (one more allocation). This layer writes the made id twice from 36 bytes on
//! the stack, once into the request and once into the response (docs/PERFORMANCE.md).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::middleware::{REQUEST_ID, uuid_v4_text};

/// Sets `x-request-id` on requests without one and copies the request's onto its response
/// (unless the response has its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Debug, Clone, Copy)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = match request.headers().get(REQUEST_ID) {
            Some(given) => given.clone(),
            None => {
                let text = uuid_v4_text(rand::random());
                request
                    .headers_mut()
                    .insert(REQUEST_ID, header_value(&text));
                header_value(&text)
            }
        };
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

/// A header value of an id's text (hexadecimal digits and hyphens: always valid).
fn header_value(text: &[u8; 36]) -> HeaderValue {
    HeaderValue::from_bytes(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

pin_project! {
    /// The inner service's answer, with the request's id.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().entry(REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// Answers with the id its request carried in `x-seen-id`, and with `own` as its own
    /// `x-request-id` when given.
    async fn answer(request: Request<Body>, own: Option<&'static str>) -> Response<Body> {
        let service = RequestIdLayer.layer(service_fn(move |request: Request<Body>| async move {
            let mut response = Response::new(Body::empty());
            if let Some(seen) = request.headers().get(REQUEST_ID) {
                response.headers_mut().insert("x-seen-id", seen.clone());
            }
            if let Some(own) = own {
                response
                    .headers_mut()
                    .insert(REQUEST_ID, HeaderValue::from_static(own));
            }
            Ok::<_, Infallible>(response)
        }));
        service
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {})
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_uuid_on_both_sides() {
        let first = answer(Request::new(Body::empty()), None).await;
        let id = first.headers()[REQUEST_ID].to_str().unwrap_or_default();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4', "version 4: {id}");
        assert_eq!(
            first.headers()["x-seen-id"],
            id,
            "the handler saw the same id"
        );
        let second = answer(Request::new(Body::empty()), None).await;
        assert_ne!(second.headers()[REQUEST_ID], id, "ids differ");
    }

    #[tokio::test]
    async fn the_clients_id_is_kept_and_echoed() {
        let request = Request::builder()
            .header(REQUEST_ID, "client-7")
            .body(Body::empty())
            .unwrap_or_default();
        let response = answer(request, None).await;
        assert_eq!(response.headers()[REQUEST_ID], "client-7");
        assert_eq!(response.headers()["x-seen-id"], "client-7");
    }

    #[tokio::test]
    async fn a_response_with_its_own_id_keeps_it() {
        let response = answer(Request::new(Body::empty()), Some("from-handler")).await;
        assert_eq!(response.headers()[REQUEST_ID], "from-handler");
        assert_eq!(response.headers().get_all(REQUEST_ID).iter().count(), 1);
    }
}
