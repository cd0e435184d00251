//! A count-min sketch of access frequencies with periodic aging (TinyLFU), one for the
//! whole cache.
//!
//! Sixteen 4-bit counters share each `u64`; an item's four counters (one per hash
//! function) sit in one 16-counter block chosen by its hash, so an increment touches at
//! most four words. When the number of recorded accesses reaches the sample size, every
//! counter is halved, so the sketch follows a changing popularity instead of remembering
//! forever. This is the layout of Caffeine's `FrequencySketch`.
//!
//! Every shard records into the same sketch, without a lock: a counter is read and
//! written with two relaxed atomic operations (plain loads and stores on x86-64), not a
//! read-modify-write. Two threads bumping the same word at the same instant may lose one
//! of the increments, which a frequency estimate tolerates; one thread (or any replay of
//! a trace) counts exactly.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
/// The capacity a small cache's sketch is sized for: 4 096 words (32 KiB) and a sample
/// of 40 960 accesses.
const MIN_CAPACITY: usize = 4_096;
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ONE_MASK: u64 = 0x1111_1111_1111_1111;

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[AtomicU64]>,
    mask: usize,
    sample_size: u64,
    additions: AtomicU64,
}

impl FrequencySketch {
    /// A sketch sized for a cache holding `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        // Two words (32 counters, eight keys' worth) per entry, where Caffeine has one:
        // the keys competing for a place are many more than the entries, and fewer
        // collisions between them were worth 0.1–0.7 points of hit ratio on the Zipf
        // traces of `docs/PERFORMANCE.md`. Small caches get at least `MIN_CAPACITY`'s
        // width and memory: at 1 000 entries a sample of 10 000 requests forgot a key
        // before a loop of 25 000 came back to it (0 % instead of 3.5 %), and the
        // narrower table lost up to 1.2 points on Zipf.
        let words = (2 * capacity.max(MIN_CAPACITY / 2)).next_power_of_two();
        FrequencySketch {
            table: (0..words).map(|_| AtomicU64::new(0)).collect(),
            mask: words - 1,
            sample_size: 10 * capacity.max(MIN_CAPACITY) as u64,
            additions: AtomicU64::new(0),
        }
    }

    #[inline]
    fn index_of(&self, hash: u64, depth: usize) -> usize {
        let mut h = hash.wrapping_add(SEEDS[depth]).wrapping_mul(SEEDS[depth]);
        h = h.wrapping_add(h >> 32);
        (h as usize) & self.mask
    }

    /// Records one access.
    #[inline]
    pub(crate) fn increment(&self, hash: u64) {
        let start = ((hash & 3) << 2) as usize;
        let mut added = false;
        for depth in 0..4 {
            let word = &self.table[self.index_of(hash, depth)];
            let offset = (start + depth) << 2;
            let mask = 0xF_u64 << offset;
            let value = word.load(Relaxed);
            if value & mask != mask {
                word.store(value + (1 << offset), Relaxed);
                added = true;
            }
        }
        // Exactly one increment reaches the sample size; it ages the sketch.
        if added && self.additions.fetch_add(1, Relaxed) + 1 == self.sample_size {
            self.age();
        }
    }

    /// Estimated number of recent accesses (0..=15).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let start = ((hash & 3) << 2) as usize;
        (0..4)
            .map(|depth| {
                let word = self.table[self.index_of(hash, depth)].load(Relaxed);
                let offset = (start + depth) << 2;
                ((word >> offset) & 0xF) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter. `additions` drops by half, and by a quarter of the
    /// truncated odd counts (each item has four counters), as in Caffeine.
    fn age(&self) {
        let mut odd = 0_u64;
        for word in self.table.iter() {
            let value = word.load(Relaxed);
            odd += u64::from((value & ONE_MASK).count_ones());
            word.store((value >> 1) & RESET_MASK, Relaxed);
        }
        let additions = self.additions.load(Relaxed);
        self.additions
            .store((additions / 2).saturating_sub(odd / 4), Relaxed);
    }

    /// Forgets every access (used with `invalidate_all`).
    pub(crate) fn clear(&self) {
        for word in self.table.iter() {
            word.store(0, Relaxed);
        }
        self.additions.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen_and_age_by_half() {
        let sketch = FrequencySketch::new(64);
        for _ in 0..20 {
            sketch.increment(42);
        }
        assert_eq!(sketch.frequency(42), 15);
        assert_eq!(sketch.frequency(43), 0);
        sketch.age();
        assert_eq!(sketch.frequency(42), 7);
    }

    #[test]
    fn frequent_items_outrank_rare_ones() {
        let sketch = FrequencySketch::new(128);
        for i in 0..1000_u64 {
            sketch.increment(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            if i % 2 == 0 {
                sketch.increment(7);
            }
        }
        assert!(sketch.frequency(7) > sketch.frequency(3_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    }

    #[test]
    fn reaching_the_sample_size_ages_the_counts() {
        let sketch = FrequencySketch::new(128);
        for _ in 0..15 {
            sketch.increment(1);
        }
        assert_eq!(sketch.frequency(1), 15);
        // 40 960 additions make a sample: distinct keys past it halve key 1's count.
        for i in 2..50_000_u64 {
            sketch.increment(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert!(sketch.frequency(1) <= 7, "{}", sketch.frequency(1));
    }
}
