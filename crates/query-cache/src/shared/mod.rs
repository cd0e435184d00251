//! The shared Redis tier (L2) behind the in-process cache (feature `redis`).
//!
//! The tier knows nothing of the in-process cache's internals: the request path calls
//! [`SharedTier::read`] and [`SharedTier::write`], and the subscriber applies the other
//! instances' invalidations through [`LocalCache`], the one thing it needs from L1.
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

use crate::{Cacheable, Error, SharedCodec};

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

/// What the tier needs from the in-process cache (L1): applying the invalidations other
/// instances publish, and clearing it when some may have been lost.
pub(crate) trait LocalCache: Send + Sync {
    fn invalidate_key(&self, key: &str);
    fn invalidate_tag(&self, tag: &str);
    fn invalidate_prefix(&self, prefix: &str);
    /// Empties L1; returns how many entries were removed.
    fn clear(&self) -> usize;
}

impl SharedTier {
    /// Reads `key` from Redis, if `T` opted in to the shared tier.
    pub(crate) async fn read<T: Cacheable>(&self, key: &str, tags: &[&str]) -> Read<T> {
        let tier = self;
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

    /// Writes a loaded value to Redis, unless what it depends on was invalidated since
    /// [`read`](Self::read) took its snapshot.
    pub(crate) async fn write<T: Cacheable>(
        &self,
        pending: PendingWrite<T>,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Written {
        let tier = self;
        match pending.codec.encode(value) {
            Ok(bytes) => tier.store(key, bytes, ttl, pending.snapshot).await,
            Err(error) => {
                Counters::add(&tier.state.counters.codec_errors);
                tracing::warn!(key, %error, "value not shared: it does not encode");
                Written::Failed
            }
        }
    }
}
