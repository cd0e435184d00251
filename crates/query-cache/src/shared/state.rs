//! State shared by the tier's handle and its background tasks: names, counters, the
//! connection flags, and the watch channels that tests and callers wait on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::L2Stats;

/// A Redis key namespace: the prefix and the names derived from it.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) prefix: String,
    pub(crate) prefix_glob: String,
    pub(crate) channel: String,
}

/// Declares the tier's counters once: the struct, its reset, and the reading of each into
/// the [`L2Stats`] field of the same name.
macro_rules! counters {
    ($($name:ident),+ $(,)?) => {
        /// The tier's counters, each named as the [`L2Stats`] field it is read into.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)+
        }

        impl Counters {
            pub(crate) fn reset(&self) {
                $(self.$name.store(0, Ordering::Relaxed);)+
            }

            /// The counters now, with the fields of [`L2Stats`] that are no counter left at
            /// their defaults.
            pub(crate) fn stats(&self) -> L2Stats {
                L2Stats {
                    $($name: self.$name.load(Ordering::Relaxed),)+
                    ..L2Stats::default()
                }
            }
        }
    };
}

counters! {
    hits,
    misses,
    schema_mismatches,
    codec_errors,
    errors,
    timeouts,
    bypassed,
    writes,
    stale_writes_refused,
    unshared_loads,
    invalidations_sent,
    messages_sent,
    messages_received,
    reconnects,
    l1_clears,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// At most one warning per interval, so that an outage logs a line every few seconds and
/// not one per request; the suppressed count goes with the next one.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    last: Mutex<Option<std::time::Instant>>,
    suppressed: AtomicU64,
}

const WARN_EVERY: Duration = Duration::from_secs(10);

impl WarnLimiter {
    pub(crate) fn new() -> Self {
        WarnLimiter {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log now, with the number of warnings suppressed since the last one.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut last = self.last.lock();
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// State shared by the handle and its two background tasks.
#[derive(Debug)]
pub(crate) struct TierState {
    pub(crate) names: Names,
    pub(crate) counters: Counters,
    /// For failed calls on the request path and of the writer.
    pub(crate) warnings: WarnLimiter,
    /// For the subscription, so that its warnings do not hide the others.
    pub(crate) subscription_warnings: WarnLimiter,
    pub(crate) connected: AtomicBool,
    /// After a failed call, requests skip Redis until this instant instead of each paying
    /// a timeout; the first success (of a request, the writer, the subscriber or a ping)
    /// lifts it.
    pub(crate) skip_until: Mutex<Option<tokio::time::Instant>>,
    /// Tickets handed to queued invalidations (the last one issued).
    pub(crate) issued: AtomicU64,
    /// The last ticket applied to Redis. Tickets are applied in order.
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) subscribed: watch::Sender<bool>,
    /// Messages from other instances applied so far.
    pub(crate) received: watch::Sender<u64>,
    /// The confirmations of this instance's published batches.
    pub(crate) acks: watch::Sender<AckBook>,
    /// Unit tests drop incoming messages to play a lost message.
    #[cfg(test)]
    pub(crate) deaf: AtomicBool,
}

impl TierState {
    /// Counts a failed call and logs a (rate-limited) warning; `None` is a timeout.
    pub(crate) fn failed(&self, what: &str, error: Option<&redis::RedisError>) {
        self.connected.store(false, Ordering::Relaxed);
        *self.skip_until.lock() = Some(tokio::time::Instant::now() + SKIP_AFTER_FAILURE);
        self.count_and_warn(&self.warnings, what, error);
    }

    /// A failed attempt to subscribe: counted, warned about under its own limit.
    pub(crate) fn subscribe_failed(&self, error: Option<&redis::RedisError>) {
        self.count_and_warn(&self.subscription_warnings, "subscribe", error);
    }

    fn count_and_warn(&self, limiter: &WarnLimiter, what: &str, error: Option<&redis::RedisError>) {
        match error {
            Some(_) => Counters::add(&self.counters.errors),
            None => Counters::add(&self.counters.timeouts),
        }
        if let Some(suppressed) = limiter.allow() {
            match error {
                Some(error) => tracing::warn!(
                    prefix = %self.names.prefix,
                    operation = what,
                    error = %error,
                    suppressed,
                    "Redis cache tier unavailable; serving from the in-process cache and the loader"
                ),
                None => tracing::warn!(
                    prefix = %self.names.prefix,
                    operation = what,
                    suppressed,
                    "Redis cache tier timed out; serving from the in-process cache and the loader"
                ),
            }
        }
    }

    pub(crate) fn succeeded(&self) {
        self.connected.store(true, Ordering::Relaxed);
        *self.skip_until.lock() = None;
    }
}

/// How long requests skip Redis after a failed call (unless something succeeds sooner).
pub(crate) const SKIP_AFTER_FAILURE: Duration = Duration::from_millis(500);

impl TierState {
    /// Whether requests should skip Redis now, because a call failed moments ago.
    pub(crate) fn skipping(&self) -> bool {
        let mut skip_until = self.skip_until.lock();
        match *skip_until {
            Some(until) if tokio::time::Instant::now() < until => true,
            Some(_) => {
                // Time to try again: one request probes, the others follow its result.
                *skip_until = None;
                false
            }
            None => false,
        }
    }
}

/// A random number from the standard library's randomly seeded hasher: enough for
/// instance ids and epoch tokens, without a dependency on a random number crate.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since_epoch.as_nanos());
    }
    hasher.finish()
}

/// How long a batch's missing confirmations are waited for by later flushes: an instance that
/// died after receiving a message must not slow every later write down.
const ACK_PATIENCE: Duration = Duration::from_secs(1);
/// Batches remembered at most.
const ACK_MEMORY: usize = 1024;

/// The confirmations of this instance's published batches, by the batch's `seq`.
#[derive(Debug, Default)]
pub(crate) struct AckBook {
    batches: std::collections::BTreeMap<u64, Acks>,
}

#[derive(Debug, Default)]
struct Acks {
    /// Subscribers the message reached, other than this instance (`None`: not yet known).
    expected: Option<u64>,
    received: u64,
    published: Option<std::time::Instant>,
}

impl AckBook {
    /// The batch `seq` reached `expected` other instances.
    pub(crate) fn published(&mut self, seq: u64, expected: u64) {
        let acks = self.batches.entry(seq).or_default();
        acks.expected = Some(expected);
        acks.published = Some(std::time::Instant::now());
        while self.batches.len() > ACK_MEMORY {
            self.batches.pop_first();
        }
    }

    /// One instance confirmed batch `seq`.
    pub(crate) fn confirmed(&mut self, seq: u64) {
        self.batches.entry(seq).or_default().received += 1;
        while self.batches.len() > ACK_MEMORY {
            self.batches.pop_first();
        }
    }

    /// Whether every instance the batches up to the one holding `ticket` reached confirmed
    /// them (batches older than [`ACK_PATIENCE`] are given up on).
    pub(crate) fn settled(&self, ticket: u64) -> bool {
        let Some((&covering, _)) = self
            .batches
            .range(ticket..)
            .find(|(_, a)| a.expected.is_some())
        else {
            return false;
        };
        self.batches
            .range(..=covering)
            .all(|(_, acks)| match acks.expected {
                Some(expected) => {
                    acks.received >= expected
                        || acks.published.is_some_and(|at| at.elapsed() > ACK_PATIENCE)
                }
                // Confirmations of a batch this handle has not seen published yet: stray.
                None => true,
            })
    }
}
