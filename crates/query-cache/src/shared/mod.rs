//! The shared Redis tier (L2) behind the in-process cache (feature `redis`).
//!
//! - [`tier`]: the handle used on the request path (reads, conditional writes, the queue
//!   of this instance's invalidations), its state and counters;
//! - [`writer`]: applies queued invalidations to Redis in order and publishes them;
//! - [`subscriber`]: applies the other instances' invalidations to L1, and clears L1
//!   whenever messages may have been lost;
//! - [`scripts`]: the Lua scripts that make each step atomic, and the key layout.

mod config;
mod message;
mod scripts;
mod subscriber;
mod tier;
mod writer;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use config::RedisConfig;
pub(crate) use message::Invalidation;
use tier::{Counters, Fetched, Snapshot};
pub(crate) use tier::{SharedTier, Written};

use crate::cache::Inner;
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
