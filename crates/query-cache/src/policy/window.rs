//! The admission window's size for the whole cache, adapted to the workload.
//!
//! A small window favours frequency (new keys must prove themselves against the main
//! segment's victims); a large one favours recency (a window of the whole cache is a plain
//! LRU). Which is better depends on the workload, so the window climbs towards where the
//! hit ratio is highest. The direction of each step comes from *shadow hits*, an estimate
//! of the hit ratio's slope that needs no sampling period:
//!
//! - every shard remembers the hashes of the last keys its window let go without admission
//!   (rejected by the frequency filter) and of the last keys its main segment evicted
//!   ([`Shadow`]), counting as recent the last 128th of the cache's departures on that
//!   side (at least 64), over all shards ([`ShadowClock`]), whatever the shard count;
//! - a miss on a key the window just let go is a hit a slightly larger window would have
//!   had: the window grows; a miss on a key main just evicted is a hit a slightly larger
//!   main segment would have had: the window shrinks;
//! - a step is one entry while the evidence is mixed, and grows up to 1/64 of the capacity
//!   as the last hundred or so shadow hits point the same way, so that the window crosses
//!   the whole range quickly when the workload calls for it, settles by single entries
//!   around the peak, and is not thrown by a burst of shadow hits on one side (a loop
//!   larger than the cache passing by);
//! - the window never goes below Caffeine's 1 % (at least one entry): on a loop larger
//!   than the cache, an empty window lost a point of hit ratio.
//!
//! While the last shadow hits lean towards growing ([`Window::growing`]), the shards also
//! let keys asked for again soon after a rejection into main without a duel (the ghost of
//! `tiny_lfu`): the popular keys have changed and the sketch's counts are the old ones'.
//!
//! The window thus settles where one more entry is worth as much on either side, which is
//! where the hit ratio peaks. (Caffeine compares the hit ratios of consecutive samples of
//! 10 × the capacity instead; on this crate's trace suite that moved too slowly and
//! wandered too far: see `docs/PERFORMANCE.md`.) Shards read the size without a lock and
//! each keeps its exact share of it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use hashbrown::HashTable;
use parking_lot::Mutex;

/// How the window is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WindowSizing {
    /// Adapted by shadow hits, from 1 % of the capacity.
    Adaptive,
    /// A fixed share of the capacity, in percent (Caffeine's original W-TinyLFU: 1 %).
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(u8),
}

/// The admission window of the whole cache.
#[derive(Debug)]
pub(crate) struct Window {
    /// In entries, for the whole cache: `climb.size`, readable without the lock.
    size: AtomicUsize,
    /// Whether the recent shadow hits lean towards growing (`climb.trend` above
    /// [`GROWING_TREND`]): keys
    /// the window let go come back more than keys main evicted, as after a shift of
    /// popularity. Readable without the lock; always false for a fixed window.
    growing: AtomicBool,
    /// `None` for a fixed window.
    climb: Option<Mutex<Climb>>,
}

#[derive(Debug)]
struct Climb {
    size: usize,
    min: usize,
    max: usize,
    max_step: usize,
    /// Moving average of the last events' directions (+1 grow, -1 shrink), about the last
    /// [`TREND_EVENTS`] of them: how one-sided the evidence is.
    trend: f64,
}

/// The number of recent shadow hits the trend follows.
const TREND_EVENTS: f64 = 128.0;

/// The trend above which the window is [`Window::growing`]: at 0, the noise of a stationary
/// Zipf trace at 20 000 entries crossed it and let keys into main without a duel (88.72 %
/// instead of 88.91 % on Zipf 1); at 0.1 it stays below.
const GROWING_TREND: f64 = 0.1;

impl Climb {
    fn step(&mut self, grow: bool) -> usize {
        let direction = if grow { 1.0 } else { -1.0 };
        self.trend += (direction - self.trend) / TREND_EVENTS;
        // One entry while the evidence is mixed, up to `max_step` while it all points
        // this way: a burst of hits on one side (a loop passing by) is not a trend.
        let step = 1 + ((self.trend * direction).max(0.0) * self.max_step as f64) as usize;
        self.size = if grow {
            (self.size + step).min(self.max)
        } else {
            self.size.saturating_sub(step).max(self.min)
        };
        self.size
    }
}

impl Window {
    pub(crate) fn new(capacity: usize, sizing: WindowSizing) -> Self {
        let percent = match sizing {
            WindowSizing::Adaptive => 1,
            WindowSizing::Fixed(percent) => usize::from(percent.min(100)),
        };
        // Caffeine's start: 1 %, at least one entry when there is room for a main
        // segment beside it.
        let size = if capacity >= 2 {
            (capacity * percent / 100).max(1)
        } else {
            0
        };
        let climb = (sizing == WindowSizing::Adaptive).then(|| {
            Mutex::new(Climb {
                size,
                min: size,
                max: capacity,
                max_step: capacity / 64,
                trend: 0.0,
            })
        });
        Window {
            size: AtomicUsize::new(size),
            growing: AtomicBool::new(false),
            climb,
        }
    }

    /// The window's size now, in entries, for the whole cache.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.size.load(Relaxed)
    }

    /// Whether the last shadow hits mostly said that a larger window would have hit.
    #[inline]
    pub(crate) fn growing(&self) -> bool {
        self.growing.load(Relaxed)
    }

    /// A larger window would have hit.
    pub(crate) fn grow(&self) {
        self.step(true);
    }

    /// A larger main segment would have hit.
    pub(crate) fn shrink(&self) {
        self.step(false);
    }

    fn step(&self, grow: bool) {
        if let Some(climb) = &self.climb {
            let mut climb = climb.lock();
            self.size.store(climb.step(grow), Relaxed);
            self.growing.store(climb.trend > GROWING_TREND, Relaxed);
        }
    }
}

/// Counts the keys that left one side (the window without admission, or main) over the
/// whole cache: a shadow entry's stamp, so that "recent" means the same number of
/// departures whatever the shard count.
#[derive(Debug, Default)]
pub(crate) struct ShadowClock(AtomicU64);

impl ShadowClock {
    /// A departure: its stamp.
    pub(crate) fn tick(&self) -> u64 {
        self.0.fetch_add(1, Relaxed)
    }

    pub(crate) fn now(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The hashes of the last keys to leave one side of a shard (the window without admission,
/// or main), stamped by the side's cache-wide [`ShadowClock`], to recognise a miss that a
/// larger side would have hit: one among the last `horizon` departures of the whole cache.
pub(crate) struct Shadow {
    /// Oldest first.
    order: VecDeque<u64>,
    /// Hash and stamp.
    members: HashTable<(u64, u64)>,
    capacity: usize,
    horizon: u64,
}

impl Shadow {
    /// A shadow that counts departures within the last `horizon` of the cache, holding up
    /// to `capacity` of them (more than this shard's share of the horizon, so that the
    /// stamps decide, not how many happened to land on this shard).
    pub(crate) fn new(capacity: usize, horizon: u64) -> Self {
        Shadow {
            order: VecDeque::with_capacity(capacity),
            members: HashTable::with_capacity(capacity),
            capacity,
            horizon,
        }
    }

    /// Remembers `hash`, which left at `stamp`, forgetting the oldest beyond the capacity.
    pub(crate) fn push(&mut self, hash: u64, stamp: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
            && let Ok(found) = self.members.find_entry(oldest, |&(h, _)| h == oldest)
        {
            found.remove();
        }
        if self.members.find(hash, |&(h, _)| h == hash).is_none() {
            self.members.insert_unique(hash, (hash, stamp), |&(h, _)| h);
            self.order.push_back(hash);
        }
    }

    /// Whether `hash` left within the horizon before `now`; forgets it (a shadow hit
    /// counts once).
    pub(crate) fn take(&mut self, hash: u64, now: u64) -> bool {
        match self.members.find_entry(hash, |&(h, _)| h == hash) {
            Ok(found) => {
                let ((_, stamp), _) = found.remove();
                // Its place in `order` is freed when it comes round: a stale slot that
                // `push` skips removing (the hash is gone from `members`).
                now.saturating_sub(stamp) < self.horizon
            }
            Err(_) => false,
        }
    }
}

/// The hashes of the last keys a shard rejected at the duel, as many as it holds entries:
/// a [`Shadow`] counted by place only, without stamps (a third less memory).
pub(crate) struct Ghost {
    /// Oldest first; a taken hash keeps its place here until it comes round.
    order: VecDeque<u64>,
    members: HashTable<u64>,
    capacity: usize,
}

impl Ghost {
    pub(crate) fn new(capacity: usize) -> Self {
        Ghost {
            order: VecDeque::with_capacity(capacity),
            members: HashTable::with_capacity(capacity),
            capacity,
        }
    }

    /// Remembers `hash`, forgetting the oldest beyond the capacity.
    pub(crate) fn push(&mut self, hash: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
            && let Ok(found) = self.members.find_entry(oldest, |&h| h == oldest)
        {
            found.remove();
        }
        if self.members.find(hash, |&h| h == hash).is_none() {
            self.members.insert_unique(hash, hash, |&h| h);
            self.order.push_back(hash);
        }
    }

    /// Whether `hash` is remembered; forgets it.
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        match self.members.find_entry(hash, |&h| h == hash) {
            Ok(found) => {
                found.remove();
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ghost_remembers_the_last_hashes_once() {
        let mut ghost = Ghost::new(3);
        for hash in 1..=4 {
            ghost.push(hash);
        }
        assert!(!ghost.take(1), "pushed out by 4");
        assert!(ghost.take(3));
        assert!(!ghost.take(3), "counted once");
        // A taken hash keeps its place until it comes round: 5 pushes 2 out.
        ghost.push(5);
        assert!(!ghost.take(2));
        assert!(ghost.take(4) && ghost.take(5));
    }

    #[test]
    fn shadows_remember_the_last_hashes_once() {
        let mut shadow = Shadow::new(3, 10);
        for hash in 1..=4 {
            shadow.push(hash, hash);
        }
        assert!(!shadow.take(1, 5), "pushed out by 4");
        assert!(shadow.take(3, 5));
        assert!(!shadow.take(3, 5), "counted once");
        assert!(!shadow.take(2, 12), "beyond the horizon");
        assert!(shadow.take(4, 12));
    }

    #[test]
    fn a_fixed_window_never_moves_and_an_adaptive_one_stays_in_bounds() {
        let fixed = Window::new(1_000, WindowSizing::Fixed(1));
        fixed.grow();
        assert_eq!(fixed.size(), 10);
        let adaptive = Window::new(1_000, WindowSizing::Adaptive);
        for _ in 0..5 {
            adaptive.grow();
        }
        assert_eq!(adaptive.size(), 15, "single entries at first");
        for _ in 0..300 {
            adaptive.grow();
        }
        assert_eq!(adaptive.size(), 1_000, "then faster, up to the whole cache");
        adaptive.shrink();
        assert_eq!(adaptive.size(), 999, "one entry against the trend");
        for _ in 0..2_000 {
            adaptive.shrink();
        }
        assert_eq!(adaptive.size(), 10, "never below 1 %");
    }
}
