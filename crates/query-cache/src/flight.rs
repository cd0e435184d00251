//! Running a loader as the leader of a single-flight load, and handing its outcome to
//! the callers that waited for it.

use std::any::type_name;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cache::Inner;
use crate::shard::{AnyArc, NewEntry, Outcome, OutcomeSender, Store};
use crate::{CacheKey, Cacheable, Error, LoadError, Ttl};

/// Registered flight of the current leader. If the leader's future is dropped (its caller
/// was cancelled) or unwinds (its loader panicked) before completing, `Drop` unregisters
/// the flight and then closes the channel: the waiters wake, find no flight and one of
/// them loads again. Nothing is left wedged.
pub(crate) struct FlightGuard<'a> {
    inner: &'a Inner,
    key: &'a CacheKey,
    hash: u64,
    id: u64,
    sender: Option<OutcomeSender>,
}

impl FlightGuard<'_> {
    fn complete(mut self, outcome: Outcome) {
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(outcome));
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.inner
                .shard(self.hash)
                .lock()
                .end_flight(self.key.as_str(), self.id);
            self.inner
                .loads
                .abandoned
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(key = %self.key, "cache load abandoned by its caller");
            // Closed only now that the flight is gone, so woken waiters cannot rejoin it.
            drop(sender);
        }
    }
}

/// A point in time `after` from `now`, saturating far in the future instead of
/// overflowing for absurd durations.
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    now.checked_add(after.min(FAR_FUTURE)).unwrap_or(now)
}

/// Runs `loader` for the registered flight `id` and stores its value unless the flight
/// was detached or one of its tags invalidated meanwhile.
///
/// With a shared tier, Redis is read first (a hit answers without the loader), and a
/// loaded value is written there only if nothing it depends on was invalidated, by any
/// instance, since that read; a value Redis refuses is not stored in L1 either.
#[allow(clippy::too_many_arguments)] // the flight's parts
pub(crate) async fn lead<T, E, F, Fut>(
    inner: &Inner,
    key: &CacheKey,
    hash: u64,
    id: u64,
    sender: OutcomeSender,
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
    let guard = FlightGuard {
        inner,
        key,
        hash,
        id,
        sender: Some(sender),
    };
    #[cfg(feature = "redis")]
    let pending = match crate::shared::read::<T>(inner, key.as_str(), tags).await {
        crate::shared::Read::Hit { value, ttl_left } => {
            return Ok(finish(guard, Arc::new(value), ttl, Some(ttl_left)));
        }
        crate::shared::Read::Miss(pending) => pending,
    };
    #[cfg(not(feature = "redis"))]
    let _ = tags;
    let started = Instant::now();
    let result = loader().await;
    let elapsed = Instant::now().saturating_duration_since(started);
    match result {
        Ok(value) => {
            inner.loads.finished(elapsed, false);
            #[cfg(feature = "redis")]
            if let Some(pending) = pending
                // A load detached meanwhile (its key or a tag invalidated here, or L1
                // cleared) must not reach Redis either.
                && inner.shard(hash).lock().flight_is_current(key.as_str(), id)
                && crate::shared::write(inner, pending, key.as_str(), &value, ttl.fresh_for())
                    .await
                    == crate::shared::Written::Refused
            {
                inner.shard(hash).lock().discard_flight(key.as_str(), id);
                tracing::debug!(key = %key, "loaded value not cached: invalidated by another instance while loading");
                let value = Arc::new(value);
                guard.complete(Outcome::Value {
                    value: value.clone(),
                    type_name: type_name::<T>(),
                });
                return Ok(value);
            }
            Ok(finish(guard, Arc::new(value), ttl, None))
        }
        Err(error) => {
            inner.loads.finished(elapsed, true);
            inner.shard(hash).lock().end_flight(key.as_str(), id);
            let error = Arc::new(error);
            guard.complete(Outcome::Failed {
                error: error.clone(),
                type_name: type_name::<E>(),
            });
            Err(LoadError::Loader {
                key: key.clone(),
                source: error,
            })
        }
    }
}

/// Stores a value in L1 (unless its flight was detached or a tag invalidated since it
/// started) and hands it to the flight's waiters.
fn finish<T: Cacheable>(
    guard: FlightGuard<'_>,
    value: Arc<T>,
    ttl: Ttl,
    shared_ttl_left: Option<Duration>,
) -> Arc<T> {
    let (inner, key, hash, id) = (guard.inner, guard.key, guard.hash, guard.id);
    let shared: AnyArc = value.clone();
    let now = Instant::now();
    match inner.l1_lifetime(ttl, shared_ttl_left) {
        Some((fresh_for, grace)) => {
            let fresh_until = deadline(now, fresh_for);
            let new = NewEntry {
                value: Arc::clone(&shared),
                type_name: type_name::<T>(),
                fresh_until,
                stale_until: deadline(fresh_until, grace),
                tags: Box::default(),
                // `T::weight`, not `Arc<T>::weight`: the `Arc` itself is shared, not stored.
                weight: if inner.max_weight.is_some() {
                    T::weight(&value)
                } else {
                    0
                },
                hash,
            };
            let stored = inner.shard(hash).lock().finish_flight(key, id, new, now);
            if stored == Store::Discarded {
                tracing::debug!(key = %key, "loaded value not cached: invalidated while loading");
            }
        }
        // L1 keeps nothing: only the waiters get the value.
        None => {
            inner.shard(hash).lock().end_flight(key.as_str(), id);
        }
    }
    guard.complete(Outcome::Value {
        value: shared,
        type_name: type_name::<T>(),
    });
    value
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
