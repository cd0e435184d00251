//! Leading a load: running the loader for a registered flight (after the shared tier, if
//! there is one), storing its value and handing the outcome to the callers that waited.

use std::any::type_name;
use std::sync::Arc;

use tokio::time::Instant;

use crate::core::Core;
use crate::entry::AnyArc;
use crate::flights::{Outcome, OutcomeSender, Ticket};
use crate::shard::Store;
use crate::{CacheKey, Cacheable, Error, LoadError, Ttl};

/// The shared tier a load reads first and writes after, when the cache has one.
#[cfg(feature = "redis")]
pub(crate) type Tier<'a> = Option<&'a crate::shared::SharedTier>;
#[cfg(not(feature = "redis"))]
pub(crate) type Tier<'a> = Option<&'a std::convert::Infallible>;

/// The leader's hold on its flight. If the leader's future is dropped (its caller was
/// cancelled) or unwinds (its loader panicked) before completing, `Drop` unregisters the
/// flight and then closes the channel: the waiters wake, find no flight and one of them
/// loads again. Nothing is left wedged.
struct Leader<'a> {
    core: &'a Core,
    key: CacheKey,
    hash: u64,
    id: u64,
    sender: Option<OutcomeSender>,
}

impl Leader<'_> {
    fn complete(mut self, outcome: Outcome) {
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(outcome));
        }
    }

    /// Stores `value` (unless the flight was detached or a tag invalidated since it
    /// started) and hands it to the waiters.
    fn finish<T: Cacheable>(
        self,
        value: Arc<T>,
        ttl: Ttl,
        shared_ttl_left: Option<std::time::Duration>,
    ) -> Arc<T> {
        let new = self
            .core
            .new_entry(&value, self.hash, ttl, shared_ttl_left, Instant::now());
        let stored_nothing = new.is_none();
        let stored = self.core.finish_flight(&self.key, self.hash, self.id, new);
        if stored == Store::Discarded && !stored_nothing {
            tracing::debug!(key = %self.key, "loaded value not cached: invalidated while loading");
        }
        self.complete(Outcome::Value {
            value: Arc::clone(&value) as AnyArc,
            type_name: type_name::<T>(),
        });
        value
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.core.end_flight(self.key.as_str(), self.hash, self.id);
            self.core
                .loads
                .abandoned
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(key = %self.key, "cache load abandoned by its caller");
            // Closed only now that the flight is gone, so woken waiters cannot rejoin it.
            drop(sender);
        }
    }
}

/// Runs `loader` for the flight `ticket` and stores its value unless the flight was
/// detached or one of its tags invalidated meanwhile.
///
/// With a shared tier, it is read first (a hit answers without the loader), and a loaded
/// value is written there only if nothing it depends on was invalidated, by any instance,
/// since that read; a value the tier refuses is not stored in this process either.
pub(crate) async fn lead<T, E, F, Fut>(
    core: &Core,
    tier: Tier<'_>,
    ticket: Ticket,
    ttl: Ttl,
    tags: &[&str],
    loader: F,
) -> Result<Arc<T>, LoadError<E>>
where
    T: Cacheable,
    E: Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Ticket {
        key,
        hash,
        id,
        sender,
    } = ticket;
    let leader = Leader {
        core,
        key,
        hash,
        id,
        sender: Some(sender),
    };
    #[cfg(feature = "redis")]
    let pending = match tier {
        Some(tier) => match tier.read::<T>(leader.key.as_str(), tags).await {
            crate::shared::Read::Hit { value, ttl_left } => {
                return Ok(leader.finish(Arc::new(value), ttl, Some(ttl_left)));
            }
            crate::shared::Read::Miss(pending) => pending,
        },
        None => None,
    };
    #[cfg(not(feature = "redis"))]
    let _ = (tier, tags);
    let started = Instant::now();
    let result = loader().await;
    let elapsed = Instant::now().saturating_duration_since(started);
    match result {
        Ok(value) => {
            core.loads.finished(elapsed, false);
            #[cfg(feature = "redis")]
            if let (Some(tier), Some(pending)) = (tier, pending)
                // A load detached meanwhile (its key or a tag invalidated here, or L1
                // cleared) must not reach Redis either.
                && core.flight_is_current(leader.key.as_str(), hash, id)
                && tier.write(pending, leader.key.as_str(), &value, ttl.fresh_for()).await
                    == crate::shared::Written::Refused
            {
                core.discard_flight(leader.key.as_str(), hash, id);
                tracing::debug!(key = %leader.key, "loaded value not cached: invalidated by another instance while loading");
                let value = Arc::new(value);
                leader.complete(Outcome::Value {
                    value: Arc::clone(&value) as AnyArc,
                    type_name: type_name::<T>(),
                });
                return Ok(value);
            }
            Ok(leader.finish(Arc::new(value), ttl, None))
        }
        Err(error) => {
            core.loads.finished(elapsed, true);
            core.end_flight(leader.key.as_str(), hash, id);
            let key = leader.key.clone();
            let error = Arc::new(error);
            leader.complete(Outcome::Failed {
                error: Arc::clone(&error) as AnyArc,
                type_name: type_name::<E>(),
            });
            Err(LoadError::Loader { key, source: error })
        }
    }
}

/// Converts a shared value to the caller's type.
#[inline]
pub(crate) fn downcast<T: Cacheable>(
    value: AnyArc,
    found: &'static str,
    key: &str,
) -> Result<Arc<T>, Error> {
    value.downcast::<T>().map_err(|_| Error::TypeMismatch {
        key: CacheKey::from(key),
        expected: type_name::<T>(),
        found,
    })
}

/// What a waiter gets from the leader's outcome, typed for the waiter.
pub(crate) fn from_outcome<T: Cacheable, E: Send + Sync + 'static>(
    key: &str,
    outcome: Outcome,
) -> Result<Arc<T>, LoadError<E>> {
    match outcome {
        Outcome::Value { value, type_name } => Ok(downcast(value, type_name, key)?),
        Outcome::Failed {
            error,
            type_name: found,
        } => match error.downcast::<E>() {
            Ok(source) => Err(LoadError::Loader {
                key: CacheKey::from(key),
                source,
            }),
            Err(_) => Err(LoadError::Cache(Error::TypeMismatch {
                key: CacheKey::from(key),
                expected: type_name::<E>(),
                found,
            })),
        },
    }
}
