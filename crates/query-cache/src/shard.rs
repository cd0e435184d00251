//! One shard: an LRU list of entries, the loads running for its keys, and its counters,
//! all behind one mutex so that a lookup takes exactly one uncontended lock.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use lru::LruCache;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::CacheKey;
use crate::sketch::FrequencySketch;
use crate::stats::ShardCounters;
use crate::tags::{TagStamp, all_current};

/// A type-erased shared value.
pub(crate) type AnyArc = Arc<dyn Any + Send + Sync>;

/// A stored value with everything needed to decide, without other locks, whether it may
/// be served.
pub(crate) struct Entry {
    pub(crate) value: AnyArc,
    pub(crate) type_name: &'static str,
    pub(crate) fresh_until: Instant,
    /// `fresh_until` plus the stale-while-revalidate grace.
    pub(crate) stale_until: Instant,
    /// Generations of the entry's tags when its load started.
    pub(crate) tags: Box<[TagStamp]>,
    pub(crate) weight: usize,
    /// Unique within the shard; tells this entry from a later one under the same key.
    pub(crate) id: u64,
    /// The key's hash, kept for the admission filter's victim estimate.
    pub(crate) hash: u64,
}

/// Why an entry may not be served any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    Invalidated,
    Expired,
}

impl Entry {
    #[inline]
    fn dead(&self, now: Instant) -> Option<Dead> {
        if !all_current(&self.tags) {
            Some(Dead::Invalidated)
        } else if now >= self.stale_until {
            Some(Dead::Expired)
        } else {
            None
        }
    }
}

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
pub(crate) struct Flight {
    pub(crate) id: u64,
    /// Tag generations captured before the loader started.
    pub(crate) tags: Box<[TagStamp]>,
    pub(crate) outcome: OutcomeReceiver,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Fresh(AnyArc, &'static str),
    /// Expired but inside its stale-while-revalidate grace.
    Stale(AnyArc, &'static str),
    Missing,
}

/// Result of storing a loaded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Stored,
    /// The key or a tag was invalidated while the loader ran.
    Discarded,
    /// Heavier on its own than the shard's weight budget.
    Rejected,
}

pub(crate) struct NewEntry {
    pub(crate) value: AnyArc,
    pub(crate) type_name: &'static str,
    pub(crate) fresh_until: Instant,
    pub(crate) stale_until: Instant,
    pub(crate) tags: Box<[TagStamp]>,
    pub(crate) weight: usize,
    pub(crate) hash: u64,
}

type Lru = LruCache<CacheKey, Entry, foldhash::fast::RandomState>;

/// One shard. With admission on it is a W-TinyLFU cache: new entries enter a small LRU
/// *window*; an entry pushed out of the window joins the *main* LRU only if the frequency
/// sketch says its key is requested more often than main's least recently used entry
/// (which then leaves). One-off keys thus pass through the window without displacing
/// popular entries, while a burst of new popular keys still gets a chance to prove itself.
/// With admission off the window is empty and `main` is a plain LRU.
pub(crate) struct Shard {
    main: Lru,
    window: Lru,
    flights: HashMap<CacheKey, Flight, foldhash::fast::RandomState>,
    pub(crate) counters: ShardCounters,
    /// Sum of the weights of the entries in both segments.
    weight: usize,
    main_cap: usize,
    window_cap: usize,
    max_weight: Option<usize>,
    sketch: Option<FrequencySketch>,
    next_id: u64,
    writes_since_sweep: usize,
    sweep_every: usize,
}

impl Shard {
    pub(crate) fn new(max_entries: usize, max_weight: Option<usize>, admission: bool) -> Self {
        // Caffeine's default: 1 % of the capacity for the window. A window needs room
        // for at least one entry in each segment.
        let window_cap = if admission && max_entries >= 2 {
            (max_entries / 100).max(1)
        } else {
            0
        };
        Shard {
            main: LruCache::unbounded_with_hasher(foldhash::fast::RandomState::default()),
            window: LruCache::unbounded_with_hasher(foldhash::fast::RandomState::default()),
            flights: HashMap::default(),
            counters: ShardCounters::default(),
            weight: 0,
            main_cap: max_entries - window_cap,
            window_cap,
            max_weight,
            sketch: admission.then(|| FrequencySketch::new(max_entries)),
            next_id: 0,
            writes_since_sweep: 0,
            // A full sweep costs O(entries); running it once per `max_entries` writes
            // keeps its amortised cost per write constant.
            sweep_every: max_entries.max(64),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.main.len() + self.window.len()
    }

    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pop_entry(&mut self, key: &str) -> Option<(CacheKey, Entry)> {
        self.main
            .pop_entry(key)
            .or_else(|| self.window.pop_entry(key))
    }

    /// Looks `key` up, promoting it in the LRU order and counting the hit. A dead entry
    /// found on the way is removed and counted; misses are counted by the caller, which
    /// knows whether this lookup is a retry.
    /// With `allow_stale` false a stale entry is reported missing (and left in place).
    #[inline]
    pub(crate) fn lookup(
        &mut self,
        key: &str,
        hash: u64,
        now: Instant,
        allow_stale: bool,
    ) -> Lookup {
        if let Some(sketch) = &mut self.sketch {
            sketch.increment(hash);
        }
        let found = match self.main.get(key) {
            Some(entry) => Some(entry),
            None => self.window.get(key),
        };
        let dead = match found {
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
        if let Some((key, entry)) = self.pop_entry(key) {
            self.forget(&key, &entry, Some(dead));
        }
        Lookup::Missing
    }

    /// Whether a fresh entry for `key` is present, without counting or promoting it.
    pub(crate) fn peek_fresh(&self, key: &str, now: Instant) -> bool {
        self.main
            .peek(key)
            .or_else(|| self.window.peek(key))
            .is_some_and(|entry| entry.dead(now).is_none() && now < entry.fresh_until)
    }

    /// Whether `id` is still the registered load for `key` and none of its tags was
    /// invalidated since it started: its value may still be stored.
    #[cfg(feature = "redis")]
    pub(crate) fn flight_is_current(&self, key: &str, id: u64) -> bool {
        self.flights
            .get(key)
            .is_some_and(|flight| flight.id == id && all_current(&flight.tags))
    }

    /// Ends the flight `id` without storing its value, counted as discarded.
    #[cfg(feature = "redis")]
    pub(crate) fn discard_flight(&mut self, key: &str, id: u64) {
        self.end_flight(key, id);
        self.counters.discarded_loads += 1;
    }

    /// A running load for `key` that a caller may still join: one whose tags were not
    /// invalidated since it started (its value could predate the invalidating write).
    pub(crate) fn joinable_flight(&self, key: &str) -> Option<OutcomeReceiver> {
        self.flights
            .get(key)
            .filter(|flight| all_current(&flight.tags))
            .map(|flight| flight.outcome.clone())
    }

    /// Registers a new load for `key`, replacing (detaching) any older one: the older
    /// load still answers its own waiters but will not store its value.
    pub(crate) fn start_flight(
        &mut self,
        key: CacheKey,
        tags: Box<[TagStamp]>,
    ) -> (u64, OutcomeSender) {
        let id = self.next_id();
        let (sender, outcome) = watch::channel(None);
        self.flights.insert(key, Flight { id, tags, outcome });
        (id, sender)
    }

    /// Whether a load for `key` is registered (fresh or not).
    pub(crate) fn has_flight(&self, key: &str) -> bool {
        self.flights.contains_key(key)
    }

    /// Removes the flight `id` if it is still the registered one for `key`.
    pub(crate) fn end_flight(&mut self, key: &str, id: u64) -> Option<Flight> {
        if self.flights.get(key).is_some_and(|flight| flight.id == id) {
            self.flights.remove(key)
        } else {
            None
        }
    }

    /// Stores the value of the finished flight `id`, unless the flight was detached by an
    /// invalidation or one of its tags was invalidated since the load started.
    /// The entry is stamped with the tag generations the flight captured at its start.
    pub(crate) fn finish_flight(
        &mut self,
        key: &CacheKey,
        id: u64,
        mut new: NewEntry,
        now: Instant,
    ) -> Store {
        let Some(flight) = self.end_flight(key.as_str(), id) else {
            self.counters.discarded_loads += 1;
            return Store::Discarded;
        };
        if !all_current(&flight.tags) {
            self.counters.discarded_loads += 1;
            return Store::Discarded;
        }
        new.tags = flight.tags;
        self.store(key.clone(), new, true, now)
    }

    /// Stores an entry given directly (insert, pre-warm): it supersedes any running load.
    pub(crate) fn insert(&mut self, key: CacheKey, new: NewEntry, now: Instant) -> Store {
        self.flights.remove(&key);
        if !all_current(&new.tags) {
            self.counters.discarded_loads += 1;
            return Store::Discarded;
        }
        self.store(key, new, false, now)
    }

    /// Stores an entry. `admit` sends a new key through the window and the admission
    /// filter; without it (direct inserts) the entry goes straight to the main segment.
    fn store(&mut self, key: CacheKey, new: NewEntry, admit: bool, now: Instant) -> Store {
        if self.max_weight.is_some_and(|max| new.weight > max) {
            self.counters.rejected += 1;
            return Store::Rejected;
        }
        let id = self.next_id();
        for stamp in new.tags.iter() {
            stamp.cell().add_member(&key, id);
        }
        self.weight += new.weight;
        self.counters.inserts += 1;
        let entry = Entry {
            value: new.value,
            type_name: new.type_name,
            fresh_until: new.fresh_until,
            stale_until: new.stale_until,
            tags: new.tags,
            weight: new.weight,
            id,
            hash: new.hash,
        };
        // A replaced entry keeps its segment; it is neither an eviction nor an expiry.
        if let Some((old_key, old)) = self.main.pop_entry(&key) {
            self.forget(&old_key, &old, None);
            self.main.put(key.clone(), entry);
        } else if let Some((old_key, old)) = self.window.pop_entry(&key) {
            self.forget(&old_key, &old, None);
            self.window.put(key.clone(), entry);
        } else if admit && self.window_cap > 0 {
            self.window.put(key.clone(), entry);
            while self.window.len() > self.window_cap {
                if let Some((candidate_key, candidate)) = self.window.pop_lru() {
                    self.offer_to_main(candidate_key, candidate, now);
                }
            }
        } else {
            while self.main.len() >= self.main_cap {
                let Some((victim_key, victim)) = self.main.pop_lru() else {
                    break;
                };
                self.evicted(&victim_key, &victim, now);
            }
            self.main.put(key.clone(), entry);
        }
        self.enforce_weight(&key, now);
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.sweep_every {
            self.sweep(now);
        }
        Store::Stored
    }

    /// An entry leaving the window joins the main segment, if there is room or if it is
    /// more frequent than main's LRU victim (TinyLFU); otherwise it is evicted.
    fn offer_to_main(&mut self, key: CacheKey, entry: Entry, now: Instant) {
        if let Some(dead) = entry.dead(now) {
            self.forget(&key, &entry, Some(dead));
            return;
        }
        if self.main.len() < self.main_cap {
            self.main.put(key, entry);
            return;
        }
        let admitted = match (&self.sketch, self.main.peek_lru()) {
            (Some(sketch), Some((_, victim))) => {
                victim.dead(now).is_some()
                    || sketch.frequency(entry.hash) > sketch.frequency(victim.hash)
            }
            _ => true,
        };
        if admitted {
            if let Some((victim_key, victim)) = self.main.pop_lru() {
                self.evicted(&victim_key, &victim, now);
            }
            self.main.put(key, entry);
        } else {
            self.evicted(&key, &entry, now);
        }
    }

    /// Evicts least recently used entries until the weight bound holds, never the entry
    /// just stored under `keep` (it fits on its own: heavier values are rejected).
    fn enforce_weight(&mut self, keep: &CacheKey, now: Instant) {
        let Some(max) = self.max_weight else { return };
        while self.weight > max {
            let main_victim_is_kept = self.main.peek_lru().is_none_or(|(key, _)| key == keep);
            let popped = if main_victim_is_kept {
                self.window.pop_lru().filter(|(key, _)| key != keep)
            } else {
                self.main.pop_lru()
            };
            let Some((key, entry)) = popped else { break };
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

    /// Bookkeeping for an entry that left the LRU list: weight, tag membership, counters.
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
    pub(crate) fn invalidate(&mut self, key: &str, id: Option<u64>) -> bool {
        if id.is_none() {
            self.flights.remove(key);
        }
        let matches = self
            .main
            .peek(key)
            .or_else(|| self.window.peek(key))
            .is_some_and(|entry| id.is_none_or(|id| entry.id == id));
        if matches && let Some((key, entry)) = self.pop_entry(key) {
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
        self.flights.retain(|key, _| !predicate(key));
        self.remove_where(|key, _| predicate(key).then_some(Dead::Invalidated))
    }

    /// Removes every expired or invalidated entry; returns how many.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        self.writes_since_sweep = 0;
        self.remove_where(|_, entry| entry.dead(now))
    }

    /// Removes the entries for which `reason` gives a reason, counting them under it.
    fn remove_where(&mut self, mut reason: impl FnMut(&CacheKey, &Entry) -> Option<Dead>) -> usize {
        let mut removed = Vec::new();
        for segment in [&mut self.main, &mut self.window] {
            segment.retain(|key, entry| match reason(key, entry) {
                None => true,
                Some(dead) => {
                    removed.push((
                        key.clone(),
                        entry.id,
                        entry.weight,
                        entry.tags.clone(),
                        dead,
                    ));
                    false
                }
            });
        }
        for (key, id, weight, tags, dead) in &removed {
            self.weight -= weight;
            for stamp in tags.iter() {
                stamp.cell().remove_member(key, *id);
            }
            match dead {
                Dead::Invalidated => self.counters.invalidations += 1,
                Dead::Expired => self.counters.expirations += 1,
            }
        }
        removed.len()
    }

    pub(crate) fn reset_counters(&mut self) {
        self.counters = ShardCounters::default();
    }

    /// Clears the frequency history (used with `invalidate_all`).
    pub(crate) fn clear_sketch(&mut self) {
        if let Some(sketch) = &mut self.sketch {
            sketch.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tags::TagRegistry;

    fn entry(registry: &TagRegistry, tags: &[&str], now: Instant) -> NewEntry {
        NewEntry {
            value: Arc::new(1_u64),
            type_name: "u64",
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
            tags: registry.stamp(tags),
            weight: 0,
            hash: 0,
        }
    }

    /// The generation check is what makes tag invalidation correct even when the eager
    /// removal misses an entry (its membership was recorded after the member set was
    /// drained): such an entry must not be served, and is counted as invalidated.
    #[test]
    fn entries_with_an_outdated_tag_generation_are_never_served() {
        let registry = TagRegistry::default();
        let now = Instant::now();
        let mut shard = Shard::new(10, None, false);
        shard.insert(CacheKey::from("a"), entry(&registry, &["t"], now), now);
        shard.insert(CacheKey::from("b"), entry(&registry, &["t"], now), now);
        shard.insert(CacheKey::from("c"), entry(&registry, &["u"], now), now);
        // Bump the generation but do not remove the members.
        let members = registry.invalidate("t");
        assert_eq!(members.len(), 2);
        assert_eq!(shard.len(), 3);
        assert!(matches!(shard.lookup("a", 0, now, true), Lookup::Missing));
        assert!(matches!(shard.lookup("c", 0, now, true), Lookup::Fresh(..)));
        assert_eq!(shard.sweep(now), 1, "the sweep removes b");
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.counters.invalidations, 2);
        assert_eq!(shard.counters.hits, 1);
    }

    #[test]
    fn expired_entries_are_swept_and_counted() {
        let registry = TagRegistry::default();
        let now = Instant::now();
        let mut shard = Shard::new(10, None, false);
        shard.insert(CacheKey::from("a"), entry(&registry, &[], now), now);
        let later = now + Duration::from_secs(60);
        assert_eq!(shard.sweep(later), 1);
        assert_eq!((shard.len(), shard.counters.expirations), (0, 1));
    }
}
