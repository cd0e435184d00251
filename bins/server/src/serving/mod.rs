//! Serving the router over HTTP/1.1 on a bound listener, with every connection under a deadline
//! and the number of connections under a cap, until a shutdown future completes.
//!
//! hyper serves each connection (as in `axum::serve`); this module adds what `axum::serve` does
//! not offer: a deadline for each phase of a connection (idle, reading a request head, busy with
//! a request; see [`ConnectionLimits`]), a cap on open connections kept below the process's
//! descriptor limit, where the longest-idle connection gives way to a new one (so a flood of idle
//! or half-sent requests cannot lock out the next health check), and accept errors logged once
//! per interval. Requests in flight are capped by the router's own layer
//! ([`crate::load_shed`]), which answers 503 instead of queueing.

mod accept_errors;
mod connections;
mod counted_service;
pub mod descriptors;
mod watched_io;

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub use connections::{CloseReason, ConnectionLimits};

use self::{
    accept_errors::{AcceptErrors, Recovery},
    connections::{Connection, ConnectionTable, Verdict},
    counted_service::CountedService,
    watched_io::WatchedIo,
};
use crate::http_metrics::HttpMetrics;

/// How long the accept loop waits after closing an idle connection for a descriptor.
const DESCRIPTOR_WAIT: Duration = Duration::from_millis(5);
/// How long it waits after an unexpected accept error.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, closes the
/// connections that are not serving a request, lets the others finish their request (within
/// their busy deadline) and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: HttpMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let table = Arc::new(ConnectionTable::new(limits.max_connections));
    // Each connection task holds a receiver: `send` tells them to stop, `closed` waits for them.
    let (stop, stopped) = watch::channel(());
    let mut accept_errors = AcceptErrors::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    match accept_errors.record(&err, table.len()) {
                        Recovery::FreeDescriptor => {
                            table.evict_one();
                            tokio::time::sleep(DESCRIPTOR_WAIT).await;
                        }
                        Recovery::Retry => {}
                        Recovery::Pause => tokio::time::sleep(ERROR_PAUSE).await,
                    }
                    continue;
                }
            },
        };
        let Some((connection, _evicted)) = table.admit() else {
            // Every connection is busy with a request: this one waits for nothing.
            metrics.connection_closed(Some(CloseReason::Refused));
            drop(stream);
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            connection,
            Arc::clone(&table),
            router.clone(),
            limits,
            stopped.clone(),
            metrics.clone(),
        ));
    }
    drop(listener);
    tracing::debug!(
        open = table.len(),
        "stopped accepting; closing idle connections"
    );
    let _ = stop.send(());
    drop(stopped);
    stop.closed().await;
}

/// Serves one connection until its client closes it, a deadline passes, it is evicted or the
/// server stops.
async fn serve_connection(
    stream: TcpStream,
    connection: Arc<Connection>,
    table: Arc<ConnectionTable>,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<()>,
    metrics: HttpMetrics,
) {
    metrics.connection_opened();
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&connection)));
    let service = CountedService::new(router, Arc::clone(&connection));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Head deadlines are the connection's own (from the first byte, not from when waiting began).
    builder.header_read_timeout(None);
    let mut http = pin!(builder.serve_connection(io, service));
    let mut deadline = pin!(tokio::time::sleep(limits.idle_timeout));
    let mut stopping = false;
    let reason = loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                break None;
            }
            () = connection.eviction() => break Some(CloseReason::Evicted),
            _ = stop.changed(), if !stopping => {
                stopping = true;
                // hyper closes an idle connection at once and a busy one after its response.
                http.as_mut().graceful_shutdown();
                if !connection.is_busy() {
                    break None;
                }
            }
            () = &mut deadline => match connection.check(&limits) {
                Verdict::Close(reason) => break Some(reason),
                Verdict::KeepUntil(at) => deadline.as_mut().reset(at),
            },
        }
    };
    table.remove(&connection);
    metrics.connection_closed(reason);
}
