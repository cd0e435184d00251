//! The shared Redis tier (L2) behind the in-process cache (feature `redis`).
//!
//! - [`tier`]: the handle used on the request path (reads, conditional writes, the queue
//!   of this instance's invalidations);
//! - [`state`]: what the handle and the tasks share (counters, connection state);
//! - [`writer`]: applies queued invalidations to Redis in order and publishes them;
//! - [`subscriber`]: applies the other instances' invalidations to L1, and clears L1
//!   whenever messages may have been lost;
//! - [`scripts`]: the Lua scripts that make each step atomic, and the key layout.

mod config;
mod message;
mod scripts;
mod state;
mod subscriber;
mod tier;
mod writer;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use config::RedisConfig;
pub(crate) use message::Invalidation;
use state::Counters;
use tier::{Fetched, Snapshot};
pub(crate) use tier::{SharedTier, Written};

use crate::cache::Inner;
use crate::{Cacheable, Error, QueryCache, SharedCodec};

/// What a load needs to write its value to Redis once its loader returns.
pub(crate) struct PendingWrite<T> {
    codec: SharedCodec<T>,
    snapshot: Snapshot,
}

/// What the shared tier had for a key that missed in L1.
pub(crate) enum Read<T> {
    Hit {
        value: T,
        ttl_left: Duration,
    },
    /// Run the loader; write its value with the `PendingWrite`, if there is one.
    Miss(Option<PendingWrite<T>>),
}

/// Reads `key` from the shared tier, if the cache has one and `T` opted in.
pub(crate) async fn read<T: Cacheable>(inner: &Inner, key: &str, tags: &[&str]) -> Read<T> {
    let Some(tier) = inner.shared.as_ref() else {
        return Read::Miss(None);
    };
    let counters = &tier.state.counters;
    let Some(codec) = T::shared_codec() else {
        Counters::add(&counters.unshared_loads);
        return Read::Miss(None);
    };
    match tier.fetch(key, tags).await {
        Fetched::Bypass => Read::Miss(None),
        Fetched::Miss(snapshot) => {
            Counters::add(&counters.misses);
            Read::Miss(Some(PendingWrite { codec, snapshot }))
        }
        Fetched::Hit {
            bytes,
            ttl_left,
            snapshot,
        } => match codec.decode(&bytes) {
            Ok(value) => {
                Counters::add(&counters.hits);
                Read::Hit { value, ttl_left }
            }
            Err(error) => {
                // Written by another type or schema version (a rolling deploy, a key used
                // for two types): a miss. The loaded value replaces it.
                Counters::add(&counters.misses);
                if matches!(error, Error::SchemaMismatch { .. }) {
                    Counters::add(&counters.schema_mismatches);
                    tracing::debug!(key, %error, "shared cache entry of another schema");
                } else {
                    Counters::add(&counters.codec_errors);
                    tracing::warn!(key, %error, "shared cache entry does not decode; bump the schema version when a cached type changes");
                }
                Read::Miss(Some(PendingWrite { codec, snapshot }))
            }
        },
    }
}

/// Writes a loaded value to the shared tier, unless what it depends on was invalidated
/// since [`read`] took its snapshot.
pub(crate) async fn write<T: Cacheable>(
    inner: &Inner,
    pending: PendingWrite<T>,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Written {
    let Some(tier) = inner.shared.as_ref() else {
        return Written::Failed;
    };
    match pending.codec.encode(value) {
        Ok(bytes) => tier.store(key, bytes, ttl, pending.snapshot).await,
        Err(error) => {
            Counters::add(&tier.state.counters.codec_errors);
            tracing::warn!(key, %error, "value not shared: it does not encode");
            Written::Failed
        }
    }
}

/// The methods that only a cache with a shared tier needs (feature `redis`).
impl QueryCache {
    /// Waits until the shared tier is subscribed to invalidations and Redis answers, at
    /// most `within`; returns whether it is. Without a shared tier, returns `false` at
    /// once. Feature `redis`.
    ///
    /// A cache works before that (from L1 and the loader), but the first subscription
    /// clears L1, so call this before pre-warming at start-up.
    pub async fn wait_for_redis(&self, within: Duration) -> bool {
        match &self.inner.shared {
            Some(tier) => tier.wait_ready(within).await,
            None => false,
        }
    }

    /// Waits, at most `within`, until every invalidation this instance made so far has
    /// been applied to Redis and published to the other instances; returns whether it
    /// was. Without a shared tier, returns `true` at once. Feature `redis`.
    ///
    /// Invalidation methods are synchronous and queue the Redis side: call this after a
    /// write when the response must not go out before the other instances can no longer
    /// read what the write changed from Redis. (Their L1 copies are dropped when the
    /// message arrives, typically a millisecond later; see the crate's guarantees.)
    pub async fn flush_invalidations(&self, within: Duration) -> bool {
        match &self.inner.shared {
            Some(tier) => tier.flush(within).await,
            None => true,
        }
    }

    /// Waits, at most `within`, until this instance has applied at least `count`
    /// invalidation messages from other instances in total (see
    /// [`L2Stats::messages_received`](crate::L2Stats::messages_received)); returns whether
    /// it has. For tests and tools that must observe an invalidation arriving. Without a
    /// shared tier, returns `false` at once. Feature `redis`.
    pub async fn wait_for_invalidation_messages(&self, count: u64, within: Duration) -> bool {
        match &self.inner.shared {
            Some(tier) => tier.wait_received(count, within).await,
            None => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn shared_tier(&self) -> Option<&crate::shared::SharedTier> {
        self.inner.shared.as_ref()
    }
}
