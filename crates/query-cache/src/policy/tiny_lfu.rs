//! W-TinyLFU with an adaptive window (the design of Caffeine's and moka's eviction).
//!
//! Each shard keeps three LRU lists in one [`Table`]:
//!
//! - the **window**: every new entry lands here, so a burst of new keys is served from
//!   the cache while it is recent;
//! - **probation**: where an entry pushed out of the window goes if it wins its *duel*
//!   against probation's least recently used entry (the victim): it must have been
//!   requested more often, according to the cache-wide frequency sketch. One-off keys
//!   thus pass through the window without displacing popular entries;
//! - **protected** (80 % of the main segment): entries hit again while on probation; the
//!   oldest protected entry falls back to probation when protected is full.
//!
//! Each shard also keeps a **ghost** of the keys it rejected last (their hashes, as many
//! as the shard holds entries; quick_cache keeps such ghosts of the keys it let go). While the
//! window's climber leans towards growing (keys let go come back more often than keys
//! evicted from main: the popular keys have changed), a candidate found in the ghost, a
//! key asked for again soon after it was rejected, skips the duel and goes straight to
//! protected. Counts in the sketch fade only by halving every 10 × the capacity's
//! accesses, so after a shift main's victims keep the counts of the old popular keys for
//! most of that time and the new ones lose their duels; the ghost lets them in within
//! one pass over it. On a stationary workload the climber does not lean one way, and the
//! duel decides as before.
//!
//! The window's size is the shard's share of a size chosen for the whole cache
//! ([`Window`]), moved by shadow hits: small on frequency-heavy workloads, large (up to all
//! but one entry of the shard, nearly a plain LRU) on recency-heavy ones.

use std::sync::Arc;

use tokio::time::Instant;

use super::sketch::FrequencySketch;
use super::table::Table;
use super::window::{Ghost, Shadow, ShadowClock, Window, WindowSizing};
use super::{Policy, Removed, servable, share};
use crate::CacheKey;
use crate::entry::Entry;

const WINDOW: usize = 0;
const PROBATION: usize = 1;
const PROTECTED: usize = 2;

/// Protected's share of the main segment, in percent.
const PROTECTED_PERCENT: usize = 80;

/// A candidate this frequent that loses its duel is still admitted once in 128 times:
/// otherwise keys crafted to collide with a hot victim in the sketch could keep every new
/// key out (Caffeine's defence against hash flooding).
const WARM_CANDIDATE: u8 = 6;

/// Each shadow (keys rejected by the window, keys evicted by main) counts the last
/// departures of the whole cache, this fraction of its capacity...
const SHADOW_DIVISOR: usize = 128;
/// ...and at least this many: fewer are too little evidence for a small cache (at 1 000
/// entries a 128th is 8 departures, and the window stayed too small on a recency-heavy
/// trace: 6.06 % against LRU's 6.80 %). 128 cost the Zipf rows at 1 000 entries 0.1–0.15
/// points more than 64 (see `docs/PERFORMANCE.md`).
const SHADOW_FLOOR: usize = 64;

/// The parts of W-TinyLFU sized for the whole cache, shared by its shards.
#[derive(Debug)]
pub(crate) struct CacheWide {
    sketch: FrequencySketch,
    window: Window,
    /// The cache's capacity in entries, which sizes the shadows.
    capacity: usize,
    /// Departures without admission from the window, and evictions from main.
    rejections: ShadowClock,
    evictions: ShadowClock,
}

impl CacheWide {
    pub(crate) fn new(capacity: usize, sizing: WindowSizing) -> Self {
        CacheWide {
            sketch: FrequencySketch::new(capacity),
            window: Window::new(capacity, sizing),
            capacity,
            rejections: ShadowClock::default(),
            evictions: ShadowClock::default(),
        }
    }

    /// Forgets every recorded access (used with `invalidate_all`).
    pub(crate) fn forget_accesses(&self) {
        self.sketch.clear();
    }

    /// The window's size for the whole cache now, in entries.
    #[cfg(test)]
    pub(crate) fn window_size(&self) -> usize {
        self.window.size()
    }
}

/// One shard's W-TinyLFU.
pub(crate) struct WTinyLfu {
    table: Table<3>,
    wide: Arc<CacheWide>,
    capacity: usize,
    shard: usize,
    shards: usize,
    /// The cache-wide window size the caps below follow.
    window_total: usize,
    window_cap: usize,
    protected_cap: usize,
    /// Keys the window let go without admission, and keys main evicted: a miss on one of
    /// them moves the window.
    rejected: Shadow,
    evicted: Shadow,
    /// Keys rejected at the duel, as many as the shard holds: one asked for again while
    /// the climber leans towards growing is admitted to protected without a duel.
    ghost: Ghost,
    /// Xorshift state for the warm-candidate lottery: seeded, so a replay is exact.
    random: u64,
}

impl WTinyLfu {
    /// Shard `shard` of `shards`, holding `capacity` entries (its share of the cache's).
    pub(crate) fn new(capacity: usize, shard: usize, shards: usize, wide: Arc<CacheWide>) -> Self {
        // The last 128th of the cache's departures on each side (at least 64 of them),
        // counted cache-wide
        // (`ShadowClock`) so that the climber sees the same evidence whatever the shard
        // count: enough misses land there to steer, few enough that they measure the value
        // of the entries at the margin. Longer shadows (a 16th of each shard, counted per
        // shard) caught a loop slightly longer than the cache on both sides, and the
        // climber then wandered by the shard count (64.1 / 62.8 / 53.2 % with 1, 8 and 64
        // shards at 20 000 entries); see `docs/PERFORMANCE.md`.
        let horizon = wide.capacity.div_ceil(SHADOW_DIVISOR).max(SHADOW_FLOOR);
        // Twice this shard's share, and some: the stamps decide, not the room.
        let room = 2 * share(horizon, shard, shards) + 8;
        let horizon = horizon as u64;
        let mut policy = WTinyLfu {
            table: Table::new(),
            wide,
            capacity,
            shard,
            shards,
            window_total: usize::MAX,
            window_cap: 0,
            protected_cap: 0,
            rejected: Shadow::new(room, horizon),
            evicted: Shadow::new(room, horizon),
            ghost: Ghost::new(capacity),
            random: 0x9e37_79b9_7f4a_7c15 ^ shard as u64,
        };
        policy.follow_window();
        policy
    }

    /// Takes this shard's share of the cache-wide window, if the climber moved it.
    fn follow_window(&mut self) {
        let total = self.wide.window.size();
        if total == self.window_total {
            return;
        }
        self.window_total = total;
        // Main keeps at least one entry: its evictions are what can shrink the window.
        self.window_cap =
            share(total, self.shard, self.shards).min(self.capacity.saturating_sub(1));
        self.protected_cap = (self.capacity - self.window_cap) * PROTECTED_PERCENT / 100;
        while self.table.list_len(PROTECTED) > self.protected_cap {
            self.demote_oldest_protected();
        }
    }

    fn demote_oldest_protected(&mut self) {
        if let Some(oldest) = self.table.oldest(PROTECTED) {
            self.table.make_newest(oldest, PROBATION);
        }
    }

    fn main_len(&self) -> usize {
        self.table.list_len(PROBATION) + self.table.list_len(PROTECTED)
    }

    /// The main segment's entry that leaves first.
    fn main_victim(&self) -> Option<u32> {
        self.table
            .oldest(PROBATION)
            .or_else(|| self.table.oldest(PROTECTED))
    }

    /// Whether `candidate` (leaving the window) should take `victim`'s place in main: the
    /// list it goes to, or `None` if it is rejected.
    fn admit(&mut self, candidate: u32, victim: u32, now: Instant) -> Option<usize> {
        let victim = self.table.entry(victim);
        if !servable(victim, now) {
            return Some(PROBATION);
        }
        let candidate_hash = self.table.entry(candidate).hash;
        // Taken from the ghost whatever the verdict: a candidate rejected again is
        // remembered again, as the newest.
        if self.ghost.take(candidate_hash) && self.wide.window.growing() {
            return Some(PROTECTED);
        }
        let sketch = &self.wide.sketch;
        let candidate_frequency = sketch.frequency(candidate_hash);
        let victim_frequency = sketch.frequency(victim.hash);
        let admitted = if candidate_frequency > victim_frequency {
            true
        } else if candidate_frequency >= WARM_CANDIDATE {
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            self.random & 127 == 0
        } else {
            false
        };
        admitted.then_some(PROBATION)
    }

    /// Moves the window's overflow to main, each entry against a victim once main is full.
    fn drain_window(&mut self, now: Instant, removed: &mut Removed) {
        while self.table.list_len(WINDOW) > self.window_cap {
            let Some(candidate) = self.table.oldest(WINDOW) else {
                break;
            };
            let candidate_hash = self.table.entry(candidate).hash;
            if !servable(self.table.entry(candidate), now) {
                removed.push(self.table.remove(candidate));
                continue;
            }
            if self.main_len() < self.capacity - self.window_cap {
                self.table.make_newest(candidate, PROBATION);
                continue;
            }
            let admitted = self
                .main_victim()
                .and_then(|victim| Some((victim, self.admit(candidate, victim, now)?)));
            match admitted {
                Some((victim, list)) => {
                    // Moved before the removal: a removal renumbers the last node.
                    self.table.make_newest(candidate, list);
                    if self.table.list_len(PROTECTED) > self.protected_cap {
                        // Protected's least recently hit entry falls back to probation,
                        // where after a shift of popularity it soon leaves.
                        self.demote_oldest_protected();
                    }
                    self.evict(victim, removed);
                }
                None => {
                    self.ghost.push(candidate_hash);
                    self.rejected
                        .push(candidate_hash, self.wide.rejections.tick());
                    removed.push(self.table.remove(candidate));
                }
            }
        }
    }

    /// Evicts main's entry `victim`, remembering it.
    fn evict(&mut self, victim: u32, removed: &mut Removed) {
        self.evicted
            .push(self.table.entry(victim).hash, self.wide.evictions.tick());
        removed.push(self.table.remove(victim));
    }
}

impl Policy for WTinyLfu {
    fn len(&self) -> usize {
        self.table.len()
    }

    #[inline]
    fn access(&mut self, key: &str, hash: u64) -> Option<&Entry> {
        self.wide.sketch.increment(hash);
        let Some(i) = self.table.find(key, hash) else {
            if self.rejected.take(hash, self.wide.rejections.now()) {
                self.wide.window.grow();
            } else if self.evicted.take(hash, self.wide.evictions.now()) {
                self.wide.window.shrink();
            }
            return None;
        };
        match self.table.list_of(i) {
            WINDOW => self.table.make_newest(i, WINDOW),
            PROTECTED => self.table.make_newest(i, PROTECTED),
            _ => {
                self.table.make_newest(i, PROTECTED);
                if self.table.list_len(PROTECTED) > self.protected_cap {
                    self.demote_oldest_protected();
                }
            }
        }
        Some(self.table.entry(i))
    }

    fn peek(&self, key: &str, hash: u64) -> Option<&Entry> {
        self.table.get(key, hash)
    }

    fn replace(&mut self, key: &str, entry: Entry) -> Result<Entry, Entry> {
        self.table.replace(key, entry)
    }

    fn insert(&mut self, key: CacheKey, entry: Entry, now: Instant, removed: &mut Removed) {
        self.follow_window();
        self.table.push(key, entry, WINDOW);
        self.drain_window(now, removed);
        // After the window grew, main may still hold more than its new share.
        while self.table.len() > self.capacity {
            if let Some(victim) = self.main_victim() {
                self.evict(victim, removed);
            } else if let Some(oldest) = self.table.oldest(WINDOW) {
                let stamp = self.wide.rejections.tick();
                self.rejected.push(self.table.entry(oldest).hash, stamp);
                removed.push(self.table.remove(oldest));
            } else {
                break;
            }
        }
    }

    fn remove(&mut self, key: &str, hash: u64) -> Option<(CacheKey, Entry)> {
        self.table.remove_key(key, hash)
    }

    fn pop_victim(&mut self, keep: &str) -> Option<(CacheKey, Entry)> {
        for list in [PROBATION, PROTECTED, WINDOW] {
            let Some(oldest) = self.table.oldest(list) else {
                continue;
            };
            let victim = if self.table.key(oldest).as_str() == keep {
                self.table.newer(oldest)
            } else {
                Some(oldest)
            };
            if let Some(victim) = victim {
                return Some(self.table.remove(victim));
            }
        }
        None
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&CacheKey, &Entry) -> bool, removed: &mut Removed) {
        self.table.retain(keep, removed);
    }
}
