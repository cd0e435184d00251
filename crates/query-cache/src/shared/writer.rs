//! The task that applies this instance's invalidations to Redis, in order, and publishes
//! them to the other instances.
//!
//! Invalidation methods are synchronous (they run after a database commit, often outside
//! any async context), so they apply to L1 at once and queue the Redis side here. The task
//! batches what piled up into one script call (one round trip, one message), retries with
//! backoff while Redis is unreachable, and collapses an overlong backlog into a single
//! "invalidate all" so that an outage cannot grow memory without bound.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::message::{Invalidation, Message, glob_escape};
use super::scripts::INVALIDATE;
use super::state::{Counters, TierState, random_u64};
use super::tier::Queued;

/// Invalidations applied (and published) per script call.
const BATCH: usize = 256;
/// A backlog longer than this becomes one "invalidate all".
const MAX_BACKLOG: usize = 10_000;
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct Writer {
    pub(crate) pending: mpsc::UnboundedReceiver<Queued>,
    pub(crate) connection: ConnectionManager,
    pub(crate) state: Arc<TierState>,
    pub(crate) origin: u64,
    pub(crate) retention: Duration,
    pub(crate) timeout: Duration,
}

pub(crate) async fn run(mut writer: Writer) {
    let mut backlog: Vec<Queued> = Vec::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        if backlog.is_empty() {
            match writer.pending.recv().await {
                Some(queued) => backlog.push(queued),
                // The cache is gone and everything it queued was applied.
                None => return,
            }
        }
        while let Ok(queued) = writer.pending.try_recv() {
            backlog.push(queued);
        }
        if backlog.len() > MAX_BACKLOG {
            let ticket = backlog.last().map_or(0, |q| q.ticket);
            tracing::warn!(
                prefix = %writer.state.names.prefix,
                backlog = backlog.len(),
                "too many invalidations waiting for Redis; they are replaced by one invalidate-all"
            );
            backlog = vec![Queued {
                ticket,
                invalidation: Invalidation::All,
            }];
        }
        let batch = backlog.len().min(BATCH);
        match writer.apply(&backlog[..batch]).await {
            Some(replaced_epochs) => {
                let ticket = backlog[batch - 1].ticket;
                backlog.drain(..batch);
                writer.state.applied.send_replace(ticket);
                backoff = MIN_BACKOFF;
                for epoch in replaced_epochs {
                    // Off the queue: later invalidations must not wait for a cleanup.
                    tokio::spawn(delete_epoch(
                        writer.connection.clone(),
                        Arc::clone(&writer.state),
                        writer.timeout,
                        epoch,
                    ));
                }
            }
            None => {
                if writer.pending.is_closed() && writer.state.applied.receiver_count() == 0 {
                    // Nobody can observe these any more, and Redis does not answer.
                    tracing::warn!(
                        prefix = %writer.state.names.prefix,
                        lost = backlog.len(),
                        "cache dropped while Redis was unreachable; queued invalidations abandoned"
                    );
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Writer {
    /// Applies `batch` in one script call; records how many other instances are to confirm
    /// it; returns the epochs it replaced.
    async fn apply(&self, batch: &[Queued]) -> Option<Vec<String>> {
        let names = &self.state.names;
        let message = Message {
            origin: self.origin,
            seq: batch.last().map_or(0, |q| q.ticket),
            invalidations: batch.iter().map(|q| q.invalidation.clone()).collect(),
        };
        let mut invocation = INVALIDATE.prepare_invoke();
        invocation
            .arg(&names.prefix)
            .arg(&names.prefix_glob)
            .arg(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX))
            .arg(&names.channel)
            .arg(message.encode());
        for queued in batch {
            match &queued.invalidation {
                Invalidation::Key(key) => invocation.arg("k").arg(key),
                Invalidation::Tag(tag) => invocation.arg("t").arg(tag),
                Invalidation::Prefix(prefix) => invocation.arg("p").arg(glob_escape(prefix)),
                Invalidation::All => invocation.arg("a").arg(format!("{:016x}", random_u64())),
            };
        }
        let mut connection = self.connection.clone();
        let call = invocation.invoke_async::<Vec<String>>(&mut connection);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(mut replaced)) => {
                self.state.succeeded();
                let receivers: u64 = if replaced.is_empty() {
                    0
                } else {
                    replaced.remove(0).parse().unwrap_or(0)
                };
                // This instance's own subscriber received it too, and does not confirm.
                let own = u64::from(*self.state.subscribed.borrow());
                let seq = message.seq;
                self.state
                    .acks
                    .send_modify(|book| book.published(seq, receivers.saturating_sub(own)));
                let counters = &self.state.counters;
                counters
                    .invalidations_sent
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Counters::add(&counters.messages_sent);
                Some(replaced)
            }
            Ok(Err(error)) => {
                self.state.failed("invalidate", Some(&error));
                None
            }
            Err(_) => {
                self.state.failed("invalidate", None);
                None
            }
        }
    }
}

/// Deletes the keys of a replaced epoch. They are unreachable already (every name contains
/// the epoch); this only frees the memory before their TTLs would.
async fn delete_epoch(
    connection: ConnectionManager,
    state: Arc<TierState>,
    timeout: Duration,
    epoch: String,
) {
    for kind in ["v", "tk"] {
        let pattern = format!("{}:{kind}:{epoch}:*", state.names.prefix_glob);
        let mut cursor: u64 = 0;
        loop {
            let mut connection = connection.clone();
            let deadline = Instant::now() + timeout;
            let page = tokio::time::timeout_at(
                deadline,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async::<(u64, Vec<String>)>(&mut connection),
            )
            .await;
            let Ok(Ok((next, keys))) = page else {
                tracing::debug!(epoch, "old cache epoch left to expire by itself");
                return;
            };
            if !keys.is_empty() {
                let unlinked = tokio::time::timeout_at(
                    deadline,
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<i64>(&mut connection),
                )
                .await;
                if !matches!(unlinked, Ok(Ok(_))) {
                    return;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}
