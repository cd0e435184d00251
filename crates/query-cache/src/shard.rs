//! One shard: its entries (held by an eviction [`Policy`]), the loads running for its
//! keys ([`Flights`]) and its counters, all behind one mutex so that a lookup takes
//! exactly one uncontended lock.
//!
//! The shard does the bookkeeping every policy shares: weights, tag membership, the
//! counters, and telling an eviction from an expiry discovered late. Which entry leaves
//! is the policy's business.

use std::sync::Arc;

use tokio::time::Instant;

use crate::CacheKey;
use crate::entry::{AnyArc, Dead, Entry};
use crate::flights::{Ended, Flights, Ticket};
use crate::policy::{Policy, Removed, ShardPolicy};
use crate::stats::ShardCounters;
use crate::tags::{TagStamp, all_current};

/// What a lookup found.
pub(crate) enum Lookup {
    Fresh(AnyArc, &'static str),
    /// Expired but inside its stale-while-revalidate grace.
    Stale(AnyArc, &'static str),
    Missing,
}

/// Result of storing a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Stored,
    /// The key or a tag was invalidated while the loader ran.
    Discarded,
    /// Heavier on its own than the shard's weight budget.
    Rejected,
}

pub(crate) struct Shard {
    policy: ShardPolicy,
    pub(crate) flights: Flights,
    pub(crate) counters: ShardCounters,
    /// Sum of the weights of the entries held.
    weight: usize,
    max_weight: Option<usize>,
    next_id: u64,
    writes_since_sweep: usize,
    sweep_every: usize,
    /// Reused for the entries a policy hands back, so that stores do not allocate.
    removed: Removed,
}

impl Shard {
    pub(crate) fn new(policy: ShardPolicy, max_entries: usize, max_weight: Option<usize>) -> Self {
        Shard {
            policy,
            flights: Flights::default(),
            counters: ShardCounters::default(),
            weight: 0,
            max_weight,
            next_id: 0,
            writes_since_sweep: 0,
            // A full sweep costs O(entries); running it once per `max_entries` writes
            // keeps its amortised cost per write constant.
            sweep_every: max_entries.max(64),
            removed: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.policy.len()
    }

    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    /// Looks `key` up, promoting it and counting the hit. A dead entry found on the way is
    /// removed and counted; misses are counted by the caller, which knows whether this
    /// lookup is a retry. With `allow_stale` false a stale entry is reported missing (and
    /// left in place).
    #[inline]
    pub(crate) fn lookup(
        &mut self,
        key: &str,
        hash: u64,
        now: Instant,
        allow_stale: bool,
    ) -> Lookup {
        let dead = match self.policy.access(key, hash) {
            None => return Lookup::Missing,
            Some(entry) => match entry.dead(now) {
                None if now < entry.fresh_until => {
                    self.counters.hits += 1;
                    return Lookup::Fresh(Arc::clone(&entry.value), entry.type_name);
                }
                None if !allow_stale => return Lookup::Missing,
                None => {
                    self.counters.hits += 1;
                    self.counters.stale_hits += 1;
                    return Lookup::Stale(Arc::clone(&entry.value), entry.type_name);
                }
                Some(dead) => dead,
            },
        };
        if let Some((key, entry)) = self.policy.remove(key, hash) {
            self.forget(&key, &entry, Some(dead));
        }
        Lookup::Missing
    }

    /// Whether a fresh entry for `key` is present, without counting or promoting it.
    pub(crate) fn peek_fresh(&self, key: &str, hash: u64, now: Instant) -> bool {
        self.policy
            .peek(key, hash)
            .is_some_and(|entry| entry.dead(now).is_none() && now < entry.fresh_until)
    }

    /// Registers a load for `key` (see [`Flights::start`]).
    pub(crate) fn start_flight(
        &mut self,
        key: CacheKey,
        hash: u64,
        tags: Box<[TagStamp]>,
    ) -> Ticket {
        self.flights.start(key, hash, tags)
    }

    /// Ends the flight `id` without storing a value.
    pub(crate) fn end_flight(&mut self, key: &str, id: u64) {
        self.flights.end(key, id);
    }

    /// Stores the value of the finished flight `id`, unless the flight was detached by an
    /// invalidation or one of its tags was invalidated since the load started. The entry
    /// is stamped with the tag generations the flight captured at its start.
    pub(crate) fn finish_flight(
        &mut self,
        key: &CacheKey,
        id: u64,
        mut new: Entry,
        now: Instant,
    ) -> Store {
        match self.flights.end(key.as_str(), id) {
            Ended::Current(tags) => {
                new.tags = tags;
                self.store(key.clone(), new, now)
            }
            Ended::Detached => {
                self.counters.discarded_loads += 1;
                Store::Discarded
            }
        }
    }

    /// Ends the flight `id` without storing its value, counted as discarded.
    #[cfg(feature = "redis")]
    pub(crate) fn discard_flight(&mut self, key: &str, id: u64) {
        self.flights.end(key, id);
        self.counters.discarded_loads += 1;
    }

    /// Stores an entry given directly (insert): it supersedes any running load.
    pub(crate) fn insert(&mut self, key: CacheKey, new: Entry, now: Instant) -> Store {
        self.flights.detach(key.as_str());
        if !all_current(&new.tags) {
            self.counters.discarded_loads += 1;
            return Store::Discarded;
        }
        self.store(key, new, now)
    }

    /// Stores an entry through the policy, then restores the weight bound.
    fn store(&mut self, key: CacheKey, new: Entry, now: Instant) -> Store {
        if self.max_weight.is_some_and(|max| new.weight > max) {
            self.counters.rejected += 1;
            return Store::Rejected;
        }
        self.next_id += 1;
        let id = self.next_id;
        for stamp in new.tags.iter() {
            stamp.cell().add_member(&key, id);
        }
        self.weight += new.weight;
        self.counters.inserts += 1;
        let entry = Entry { id, ..new };
        // A replaced entry keeps its place; it is neither an eviction nor an expiry.
        match self.policy.replace(key.as_str(), entry) {
            Ok(old) => self.forget(&key, &old, None),
            Err(entry) => {
                let mut removed = std::mem::take(&mut self.removed);
                self.policy.insert(key.clone(), entry, now, &mut removed);
                for (key, entry) in removed.drain(..) {
                    self.evicted(&key, &entry, now);
                }
                self.removed = removed;
            }
        }
        self.enforce_weight(&key, now);
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.sweep_every {
            self.sweep(now);
        }
        Store::Stored
    }

    /// Evicts until the weight bound holds, never the entry just stored under `keep` (it
    /// fits on its own: heavier values are rejected).
    fn enforce_weight(&mut self, keep: &CacheKey, now: Instant) {
        let Some(max) = self.max_weight else { return };
        while self.weight > max {
            let Some((key, entry)) = self.policy.pop_victim(keep.as_str()) else {
                break;
            };
            self.evicted(&key, &entry, now);
        }
    }

    /// Bookkeeping for an entry pushed out by a bound: an eviction if it was live,
    /// otherwise an expiry or invalidation discovered late.
    fn evicted(&mut self, key: &CacheKey, entry: &Entry, now: Instant) {
        let dead = entry.dead(now);
        if dead.is_none() {
            self.counters.evictions += 1;
        }
        self.forget(key, entry, dead);
    }

    /// Bookkeeping for an entry that left the policy: weight, tag membership, counters.
    fn forget(&mut self, key: &CacheKey, entry: &Entry, dead: Option<Dead>) {
        self.weight -= entry.weight;
        for stamp in entry.tags.iter() {
            stamp.cell().remove_member(key, entry.id);
        }
        match dead {
            Some(Dead::Invalidated) => self.counters.invalidations += 1,
            Some(Dead::Expired) => self.counters.expirations += 1,
            None => {}
        }
    }

    /// Removes `key`'s entry (if it is entry `id`, when given) and detaches its load.
    pub(crate) fn invalidate(&mut self, key: &str, hash: u64, id: Option<u64>) -> bool {
        if id.is_none() {
            self.flights.detach(key);
        }
        let matches = self
            .policy
            .peek(key, hash)
            .is_some_and(|entry| id.is_none_or(|id| entry.id == id));
        if matches && let Some((key, entry)) = self.policy.remove(key, hash) {
            self.forget(&key, &entry, Some(Dead::Invalidated));
            return true;
        }
        false
    }

    /// Removes every entry and detaches every load whose key matches `predicate`.
    pub(crate) fn invalidate_where(
        &mut self,
        mut predicate: impl FnMut(&CacheKey) -> bool,
    ) -> usize {
        self.flights.detach_where(&mut predicate);
        self.remove_where(|key, _| predicate(key).then_some(Dead::Invalidated))
    }

    /// Removes every expired or invalidated entry; returns how many.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        self.writes_since_sweep = 0;
        self.remove_where(|_, entry| entry.dead(now))
    }

    /// Removes the entries for which `reason` gives a reason, counting them under it.
    fn remove_where(&mut self, mut reason: impl FnMut(&CacheKey, &Entry) -> Option<Dead>) -> usize {
        let mut removed = std::mem::take(&mut self.removed);
        self.policy
            .retain(&mut |key, entry| reason(key, entry).is_none(), &mut removed);
        let count = removed.len();
        for (key, entry) in removed.drain(..) {
            // Asked again: the answer has not changed under the lock.
            let dead = reason(&key, &entry);
            self.forget(&key, &entry, dead);
        }
        self.removed = removed;
        count
    }

    pub(crate) fn reset_counters(&mut self) {
        self.counters = ShardCounters::default();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::Lru;
    use crate::tags::TagRegistry;

    fn entry(registry: &TagRegistry, tags: &[&str], hash: u64, now: Instant) -> Entry {
        Entry {
            value: Arc::new(1_u64),
            type_name: "u64",
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
            tags: registry.stamp(tags),
            weight: 0,
            id: 0,
            hash,
        }
    }

    fn shard() -> Shard {
        Shard::new(ShardPolicy::Lru(Lru::new(10)), 10, None)
    }

    /// The generation check is what makes tag invalidation correct even when the eager
    /// removal misses an entry (its membership was recorded after the member set was
    /// drained): such an entry must not be served, and is counted as invalidated.
    #[test]
    fn entries_with_an_outdated_tag_generation_are_never_served() {
        let registry = TagRegistry::default();
        let now = Instant::now();
        let mut shard = shard();
        shard.insert(CacheKey::from("a"), entry(&registry, &["t"], 1, now), now);
        shard.insert(CacheKey::from("b"), entry(&registry, &["t"], 2, now), now);
        shard.insert(CacheKey::from("c"), entry(&registry, &["u"], 3, now), now);
        // Bump the generation but do not remove the members.
        let members = registry.invalidate("t");
        assert_eq!(members.len(), 2);
        assert_eq!(shard.len(), 3);
        assert!(matches!(shard.lookup("a", 1, now, true), Lookup::Missing));
        assert!(matches!(shard.lookup("c", 3, now, true), Lookup::Fresh(..)));
        assert_eq!(shard.sweep(now), 1, "the sweep removes b");
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.counters.invalidations, 2);
        assert_eq!(shard.counters.hits, 1);
    }

    #[test]
    fn expired_entries_are_swept_and_counted() {
        let registry = TagRegistry::default();
        let now = Instant::now();
        let mut shard = shard();
        shard.insert(CacheKey::from("a"), entry(&registry, &[], 1, now), now);
        let later = now + Duration::from_secs(60);
        assert_eq!(shard.sweep(later), 1);
        assert_eq!((shard.len(), shard.counters.expirations), (0, 1));
    }
}
