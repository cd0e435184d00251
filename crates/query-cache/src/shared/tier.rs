//! The shared tier's handle: reads and conditional writes on the request path, and the
//! queue of this instance's invalidations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout_at};

use super::message::Invalidation;
use super::scripts::{READ, WRITE};
use super::state::{Counters, Names, TierState, WarnLimiter, random_u64};
use super::{RedisConfig, subscriber, writer};
use crate::L2Stats;

pub(crate) struct Queued {
    pub(crate) ticket: u64,
    pub(crate) invalidation: Invalidation,
}

/// The generations a load depends on, read before its loader ran, in the order [`WRITE`]
/// expects them.
#[derive(Debug)]
pub(crate) struct Snapshot {
    tags: Vec<String>,
    generations: Vec<String>,
}

/// What Redis had for a key.
pub(crate) enum Fetched {
    Hit {
        bytes: Vec<u8>,
        ttl_left: Duration,
        snapshot: Snapshot,
    },
    Miss(Snapshot),
    /// Redis could not be asked (down, slow, or this instance's invalidations pending).
    Bypass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Stored,
    Refused,
    Failed,
}

/// The shared tier of one cache. Dropping it (with the cache) stops its tasks; the writer
/// first applies what is queued.
pub(crate) struct SharedTier {
    pub(crate) state: Arc<TierState>,
    connection: ConnectionManager,
    origin: u64,
    timeout: Duration,
    pub(crate) l1_max_ttl: Duration,
    queue: Mutex<mpsc::UnboundedSender<Queued>>,
    _shutdown: watch::Sender<()>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("prefix", &self.state.names.prefix)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SharedTier {
    /// Connects lazily and starts the writer and subscriber tasks on the current runtime.
    pub(crate) fn start(
        config: &RedisConfig,
        cache: std::sync::Weak<dyn super::LocalCache>,
    ) -> redis::RedisResult<Self> {
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.invalidation_timeout.max(config.timeout)))
            .set_connection_timeout(Some(config.invalidation_timeout.max(config.timeout)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_secs(1));
        let connection =
            ConnectionManager::new_lazy_with_config(config.client.clone(), manager_config)?;
        let prefix = config.prefix.clone();
        let state = Arc::new(TierState {
            names: Names {
                prefix_glob: super::message::glob_escape(&prefix),
                channel: format!("{prefix}:invalidations"),
                prefix,
            },
            counters: Counters::default(),
            warnings: WarnLimiter::new(),
            subscription_warnings: WarnLimiter::new(),
            connected: AtomicBool::new(false),
            skip_until: Mutex::new(None),
            issued: AtomicU64::new(0),
            applied: watch::Sender::new(0),
            subscribed: watch::Sender::new(false),
            received: watch::Sender::new(0),
            acks: watch::Sender::new(super::state::AckBook::default()),
            #[cfg(test)]
            deaf: AtomicBool::new(false),
        });
        let origin = random_u64();
        let (queue, pending) = mpsc::unbounded_channel();
        let (shutdown, stop) = watch::channel(());
        tokio::spawn(writer::run(writer::Writer {
            pending,
            connection: connection.clone(),
            state: Arc::clone(&state),
            origin,
            retention: config.generation_retention,
            timeout: config.invalidation_timeout,
        }));
        tokio::spawn(subscriber::run(
            subscriber::Subscriber {
                client: config.client.clone(),
                state: Arc::clone(&state),
                cache,
                connection: connection.clone(),
                origin,
                keepalive: config.keepalive,
                timeout: config.invalidation_timeout,
            },
            stop,
        ));
        Ok(SharedTier {
            state,
            connection,
            origin,
            timeout: config.timeout,
            l1_max_ttl: config.l1_max_ttl,
            queue: Mutex::new(queue),
            _shutdown: shutdown,
        })
    }

    /// Runs one Redis call under `deadline`, counting and logging failures.
    async fn call<T>(
        &self,
        what: &str,
        deadline: Instant,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match timeout_at(deadline, call).await {
            Ok(Ok(value)) => {
                self.state.succeeded();
                Some(value)
            }
            Ok(Err(error)) => {
                self.state.failed(what, Some(&error));
                None
            }
            Err(_) => {
                self.state.failed(what, None);
                None
            }
        }
    }

    /// Reads `key` and the generations it depends on.
    ///
    /// This instance's own queued invalidations go first: a read must not bring back what
    /// this process already invalidated. If they do not reach Redis within the timeout,
    /// Redis is bypassed, as it is for a moment after any failed call.
    pub(crate) async fn fetch(&self, key: &str, tags: &[&str]) -> Fetched {
        if self.state.skipping() {
            Counters::add(&self.state.counters.bypassed);
            return Fetched::Bypass;
        }
        let deadline = Instant::now() + self.timeout;
        let ticket = self.state.issued.load(Ordering::Acquire);
        if *self.state.applied.borrow() < ticket {
            let mut applied = self.state.applied.subscribe();
            let caught_up = timeout_at(deadline, applied.wait_for(|applied| *applied >= ticket))
                .await
                .is_ok_and(|r| r.is_ok());
            if !caught_up {
                Counters::add(&self.state.counters.bypassed);
                return Fetched::Bypass;
            }
        }
        let mut tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        tags.sort_unstable();
        tags.dedup();
        let mut invocation = READ.prepare_invoke();
        invocation
            .arg(&self.state.names.prefix)
            .arg(key)
            .arg(format!("{:016x}", random_u64()));
        for tag in &tags {
            invocation.arg(tag);
        }
        let mut connection = self.connection.clone();
        let read = self
            .call(
                "read",
                deadline,
                invocation.invoke_async::<(Option<Vec<u8>>, i64, Vec<String>)>(&mut connection),
            )
            .await;
        match read {
            None => Fetched::Bypass,
            Some((value, ttl_ms, generations)) => {
                let snapshot = Snapshot { tags, generations };
                match (value, u64::try_from(ttl_ms)) {
                    (Some(bytes), Ok(ttl_ms)) if ttl_ms > 0 => Fetched::Hit {
                        bytes,
                        ttl_left: Duration::from_millis(ttl_ms),
                        snapshot,
                    },
                    _ => Fetched::Miss(snapshot),
                }
            }
        }
    }

    /// Stores `bytes` under `key` for `ttl` unless a generation in `snapshot` moved.
    pub(crate) async fn store(
        &self,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
        snapshot: Snapshot,
    ) -> Written {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Written::Failed;
        }
        let mut invocation = WRITE.prepare_invoke();
        invocation
            .arg(&self.state.names.prefix)
            .arg(key)
            .arg(bytes)
            .arg(ttl_ms)
            .arg(snapshot.tags.len());
        for tag in &snapshot.tags {
            invocation.arg(tag);
        }
        for generation in &snapshot.generations {
            invocation.arg(generation);
        }
        let mut connection = self.connection.clone();
        let deadline = Instant::now() + self.timeout;
        match self
            .call(
                "write",
                deadline,
                invocation.invoke_async::<i64>(&mut connection),
            )
            .await
        {
            Some(1) => {
                Counters::add(&self.state.counters.writes);
                Written::Stored
            }
            Some(_) => {
                Counters::add(&self.state.counters.stale_writes_refused);
                tracing::debug!(key, "Redis refused a value invalidated while it loaded");
                Written::Refused
            }
            None => Written::Failed,
        }
    }

    /// Queues an invalidation for Redis and the other instances (applied in order by the
    /// writer task).
    pub(crate) fn enqueue(&self, invalidation: Invalidation) {
        // Under the lock so that tickets enter the channel in ticket order: the writer
        // then knows that applying a ticket applied every earlier one.
        let queue = self.queue.lock();
        let ticket = self.state.issued.fetch_add(1, Ordering::AcqRel) + 1;
        // Fails only once the writer is gone with its runtime; nothing is left to do then.
        let _ = queue.send(Queued {
            ticket,
            invalidation,
        });
    }

    /// Waits until the subscription is up and Redis answers a PING.
    pub(crate) async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut subscribed = self.state.subscribed.subscribe();
        if timeout_at(deadline, subscribed.wait_for(|up| *up))
            .await
            .map_or(true, |r| r.is_err())
        {
            return false;
        }
        loop {
            let mut connection = self.connection.clone();
            let ping = redis::cmd("PING");
            let answered = timeout_at(deadline, ping.query_async::<String>(&mut connection)).await;
            match answered {
                Ok(Ok(_)) => {
                    self.state.succeeded();
                    return true;
                }
                Ok(Err(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return false,
            }
        }
    }

    /// Waits until every invalidation queued so far is applied to Redis and published.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let ticket = self.state.issued.load(Ordering::Acquire);
        if ticket == 0 {
            return true;
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut applied = self.state.applied.subscribe();
        let in_redis = timeout_at(deadline, applied.wait_for(|applied| *applied >= ticket))
            .await
            .is_ok_and(|r| r.is_ok());
        if !in_redis {
            return false;
        }
        // Applied to Redis and published: now every instance that received it confirms
        // that its L1 no longer holds what it invalidated.
        let mut acks = self.state.acks.subscribe();
        timeout_at(deadline, acks.wait_for(|book| book.settled(ticket)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until at least `count` messages from other instances were applied.
    pub(crate) async fn wait_received(&self, count: u64, within: Duration) -> bool {
        let mut received = self.state.received.subscribe();
        tokio::time::timeout(within, received.wait_for(|received| *received >= count))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub(crate) fn stats(&self) -> L2Stats {
        let issued = self.state.issued.load(Ordering::Relaxed);
        let applied = *self.state.applied.borrow();
        L2Stats {
            invalidations_pending: issued.saturating_sub(applied),
            connected: self.state.connected.load(Ordering::Relaxed),
            subscribed: *self.state.subscribed.borrow(),
            staleness_bound_ms: millis(self.l1_max_ttl),
            timeout_ms: millis(self.timeout),
            ..self.state.counters.stats()
        }
    }

    pub(crate) fn reset_stats(&self) {
        self.state.counters.reset();
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
