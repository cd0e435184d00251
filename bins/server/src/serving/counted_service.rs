//! The router as hyper's service for one connection, marking the connection busy from a
//! request's head until its response body is written (or dropped).

use std::{
    cell::RefCell,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{Router, body::Body, extract::Request, response::Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower::Service;

use super::connections::Connection;

/// Keeps its connection busy while it lives.
struct Busy(Arc<Connection>);

impl Busy {
    fn begin(connection: &Arc<Connection>) -> Self {
        connection.request_started();
        Self(Arc::clone(connection))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The router, serving one connection.
pub(crate) struct CountedService {
    /// The connection's own handle on the router. hyper calls its service through `&self`,
    /// while `Router` is called through `&mut self` (though it changes nothing); the cell lends
    /// it out instead of cloning it per request as `axum::serve` does: a clone is a reference
    /// count on the router that every connection's requests, on both workers, write.
    router: RefCell<Router>,
    connection: Arc<Connection>,
}

impl CountedService {
    pub(crate) fn new(router: Router, connection: Arc<Connection>) -> Self {
        Self {
            router: RefCell::new(router),
            connection,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for CountedService {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = CountedFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::begin(&self.connection);
        // Router is always ready (its poll_ready is always Ready), and its future borrows
        // nothing from it: the borrow ends with this call, so no other call can find it taken.
        let response = self.router.borrow_mut().call(request.map(Body::new));
        CountedFuture {
            response,
            busy: Some(busy),
        }
    }
}

pin_project! {
    /// The router's answer, whose body carries the busy mark on.
    pub(crate) struct CountedFuture {
        #[pin]
        response: <Router as Service<Request>>::Future,
        busy: Option<Busy>,
    }
}

impl Future for CountedFuture {
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.response.poll(cx))?;
        let busy = this.busy.take();
        Poll::Ready(Ok(response.map(|body| CountedBody { body, _busy: busy })))
    }
}

/// A response body that ends the connection's busy phase when written or dropped.
pub(crate) struct CountedBody {
    body: Body,
    _busy: Option<Busy>,
}

impl http_body::Body for CountedBody {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
