//! Single-flight bookkeeping: the loads running for a shard's keys, and the channel
//! through which each hands its outcome to the callers that wait for it.
//!
//! A flight is registered before its loader runs, under the shard lock, and carries the
//! tag generations of that moment: a value whose flight was detached (its key invalidated)
//! or whose tags moved since is handed to its callers but never stored.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::CacheKey;
use crate::entry::AnyArc;
use crate::tags::{TagStamp, all_current};

/// The result a load hands to the callers that waited for it.
#[derive(Clone)]
pub(crate) enum Outcome {
    Value {
        value: AnyArc,
        type_name: &'static str,
    },
    Failed {
        error: AnyArc,
        type_name: &'static str,
    },
}

/// `None` until the load finishes; a closed channel without a value means the leader was
/// dropped or panicked.
pub(crate) type OutcomeSender = watch::Sender<Option<Outcome>>;
pub(crate) type OutcomeReceiver = watch::Receiver<Option<Outcome>>;

/// A load running for a key.
struct Flight {
    id: u64,
    /// Tag generations captured before the loader started.
    tags: Box<[TagStamp]>,
    outcome: OutcomeReceiver,
}

/// What the leader of a new flight holds: enough to find its flight again and to answer
/// its waiters.
pub(crate) struct Ticket {
    pub(crate) key: CacheKey,
    pub(crate) hash: u64,
    pub(crate) id: u64,
    pub(crate) sender: OutcomeSender,
}

/// The running loads of one shard, by key.
#[derive(Default)]
pub(crate) struct Flights {
    running: HashMap<CacheKey, Flight, foldhash::fast::RandomState>,
    next_id: u64,
}

impl Flights {
    /// Registers a new load for `key`, replacing (detaching) any older one: the older
    /// load still answers its own waiters but will not store its value.
    pub(crate) fn start(&mut self, key: CacheKey, hash: u64, tags: Box<[TagStamp]>) -> Ticket {
        self.next_id += 1;
        let id = self.next_id;
        let (sender, outcome) = watch::channel(None);
        self.running
            .insert(key.clone(), Flight { id, tags, outcome });
        Ticket {
            key,
            hash,
            id,
            sender,
        }
    }

    /// A running load for `key` that a caller may still join: one whose tags were not
    /// invalidated since it started (its value could predate the invalidating write).
    pub(crate) fn joinable(&self, key: &str) -> Option<OutcomeReceiver> {
        self.running
            .get(key)
            .filter(|flight| all_current(&flight.tags))
            .map(|flight| flight.outcome.clone())
    }

    /// Whether a load for `key` is registered (current or not).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.running.contains_key(key)
    }

    /// Whether `id` is still the registered load for `key` and none of its tags was
    /// invalidated since it started: its value may still be stored.
    #[cfg(feature = "redis")]
    pub(crate) fn is_current(&self, key: &str, id: u64) -> bool {
        self.running
            .get(key)
            .is_some_and(|flight| flight.id == id && all_current(&flight.tags))
    }

    /// Unregisters the flight `id` if it is still the registered one for `key`; returns
    /// its tag stamps if it may store its value (none of them moved).
    pub(crate) fn end(&mut self, key: &str, id: u64) -> Ended {
        match self.running.get(key) {
            Some(flight) if flight.id == id => {}
            _ => return Ended::Detached,
        }
        match self.running.remove(key) {
            Some(flight) if all_current(&flight.tags) => Ended::Current(flight.tags),
            _ => Ended::Detached,
        }
    }

    /// Detaches `key`'s load, if any.
    pub(crate) fn detach(&mut self, key: &str) {
        self.running.remove(key);
    }

    /// Detaches every load whose key matches `predicate`.
    pub(crate) fn detach_where(&mut self, mut predicate: impl FnMut(&CacheKey) -> bool) {
        self.running.retain(|key, _| !predicate(key));
    }
}

/// How a flight ended.
pub(crate) enum Ended {
    /// Still registered and none of its tags moved: its value may be stored, stamped with
    /// these generations.
    Current(Box<[TagStamp]>),
    /// Replaced, removed by an invalidation, or a tag moved: its value must not be stored.
    Detached,
}
