//! The task that receives the other instances' invalidations and applies them to L1.
//!
//! Pub/sub delivers at most once: a message published while this instance is not
//! subscribed is lost. So every time the subscription is (re)established, L1 is cleared
//! and its running loads detached, after the SUBSCRIBE is confirmed: whatever L1 holds
//! from then on was loaded after the subscription began, and every later invalidation
//! reaches it. A connection that died without a FIN is found by a PING after `keepalive`
//! of silence.

#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::watch;

use super::LocalCache;
use super::message::{Invalidation, Message, ack_channel};
use super::state::{Counters, TierState};

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct Subscriber {
    pub(crate) client: redis::Client,
    /// For confirming the other instances' messages.
    pub(crate) connection: redis::aio::ConnectionManager,
    pub(crate) state: Arc<TierState>,
    pub(crate) cache: Weak<dyn LocalCache>,
    pub(crate) origin: u64,
    pub(crate) keepalive: Duration,
    pub(crate) timeout: Duration,
}

/// Runs until `stop` closes (the cache was dropped).
pub(crate) async fn run(subscriber: Subscriber, mut stop: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let mut first = true;
    loop {
        let connected = tokio::select! {
            connected = subscriber.subscribe() => connected,
            _ = stop.changed() => return,
        };
        let (mut sink, mut stream) = match connected {
            Ok(pair) => pair,
            Err(error) => {
                subscriber.state.subscribe_failed(error.as_ref());
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        // Redis answers again: requests may stop skipping it.
        subscriber.state.succeeded();
        subscriber.clear_l1();
        if first {
            first = false;
        } else {
            Counters::add(&subscriber.state.counters.reconnects);
            tracing::info!(
                prefix = %subscriber.state.names.prefix,
                "Redis invalidation subscription re-established; in-process cache cleared"
            );
        }
        subscriber.state.subscribed.send_replace(true);
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(subscriber.keepalive, stream.next()) => next,
                _ = stop.changed() => return,
            };
            match next {
                Ok(Some(message)) => {
                    if message.get_channel_name() == subscriber.state.names.channel {
                        subscriber.apply(message.get_payload_bytes());
                    } else {
                        subscriber.confirmed(message.get_payload_bytes());
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let pong =
                        tokio::time::timeout(subscriber.timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        subscriber.state.subscribed.send_replace(false);
        if let Some(suppressed) = subscriber.state.subscription_warnings.allow() {
            tracing::warn!(
                prefix = %subscriber.state.names.prefix,
                suppressed,
                "Redis invalidation subscription lost; reconnecting"
            );
        }
    }
}

impl Subscriber {
    /// Connects and subscribes; `Err(None)` on timeout.
    async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream), Option<redis::RedisError>> {
        let attempt = async {
            let pubsub = self.client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            sink.subscribe(&[
                self.state.names.channel.clone(),
                ack_channel(&self.state.names.prefix, self.origin),
            ])
            .await?;
            Ok::<_, redis::RedisError>((sink, stream))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(error)) => Err(Some(error)),
            Err(_) => Err(None),
        }
    }

    fn clear_l1(&self) {
        Counters::add(&self.state.counters.l1_clears);
        if let Some(cache) = self.cache.upgrade() {
            let removed = cache.clear();
            tracing::debug!(
                removed,
                "in-process cache cleared: invalidations may have been missed"
            );
        }
    }

    fn apply(&self, payload: &[u8]) {
        #[cfg(test)]
        if self.state.deaf.load(Ordering::Relaxed) {
            return;
        }
        let Some(message) = Message::decode(payload) else {
            // Something else publishes on our channel, or a newer version does: whatever
            // it meant, forgetting everything is safe.
            tracing::warn!(
                prefix = %self.state.names.prefix,
                "unreadable cache invalidation message; in-process cache cleared"
            );
            self.clear_l1();
            return;
        };
        if message.origin == self.origin {
            return;
        }
        if let Some(cache) = self.cache.upgrade() {
            for invalidation in &message.invalidations {
                match invalidation {
                    Invalidation::Key(key) => cache.invalidate_key(key),
                    Invalidation::Tag(tag) => cache.invalidate_tag(tag),
                    Invalidation::Prefix(prefix) => cache.invalidate_prefix(prefix),
                    Invalidation::All => {
                        cache.clear();
                    }
                }
            }
        }
        Counters::add(&self.state.counters.messages_received);
        self.state.received.send_modify(|received| *received += 1);
        // Off this task: the next message must not wait for the round trip.
        let mut connection = self.connection.clone();
        let channel = ack_channel(&self.state.names.prefix, message.origin);
        let timeout = self.timeout;
        tokio::spawn(async move {
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(channel).arg(message.seq);
            let _ =
                tokio::time::timeout(timeout, publish.query_async::<i64>(&mut connection)).await;
        });
    }

    /// Another instance confirmed one of this instance's batches.
    fn confirmed(&self, payload: &[u8]) {
        if let Some(seq) = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
        {
            self.state.acks.send_modify(|book| book.confirmed(seq));
        }
    }
}
