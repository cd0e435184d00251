//! A count-min sketch of access frequencies with periodic aging (TinyLFU).
//!
//! Sixteen 4-bit counters share each `u64`; an item's four counters (one per hash
//! function) sit in one 16-counter block chosen by its hash, so an increment touches at
//! most four words. When the number of recorded accesses reaches the sample size, every
//! counter is halved, so the sketch follows a changing popularity instead of remembering
//! forever. This is the layout of Caffeine's `FrequencySketch`.

const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ONE_MASK: u64 = 0x1111_1111_1111_1111;

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[u64]>,
    mask: usize,
    sample_size: u64,
    additions: u64,
}

impl FrequencySketch {
    /// A sketch sized for a cache (or shard) holding `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        // Small shards still get a sketch wide enough to tell keys apart.
        let capacity = capacity.max(128);
        let words = capacity.next_power_of_two();
        FrequencySketch {
            table: vec![0; words].into_boxed_slice(),
            mask: words - 1,
            sample_size: 10 * capacity as u64,
            additions: 0,
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
    pub(crate) fn increment(&mut self, hash: u64) {
        let start = ((hash & 3) << 2) as usize;
        let mut added = false;
        for depth in 0..4 {
            let index = self.index_of(hash, depth);
            let offset = (start + depth) << 2;
            let mask = 0xF_u64 << offset;
            if self.table[index] & mask != mask {
                self.table[index] += 1 << offset;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.age();
            }
        }
    }

    /// Estimated number of recent accesses (0..=15).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let start = ((hash & 3) << 2) as usize;
        (0..4)
            .map(|depth| {
                let index = self.index_of(hash, depth);
                let offset = (start + depth) << 2;
                ((self.table[index] >> offset) & 0xF) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter. `additions` drops by half, and by a quarter of the
    /// truncated odd counts (each item has four counters), as in Caffeine.
    fn age(&mut self) {
        let mut odd = 0_u64;
        for word in self.table.iter_mut() {
            odd += u64::from((*word & ONE_MASK).count_ones());
            *word = (*word >> 1) & RESET_MASK;
        }
        self.additions = (self.additions / 2).saturating_sub(odd / 4);
    }

    pub(crate) fn clear(&mut self) {
        self.table.fill(0);
        self.additions = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen_and_age_by_half() {
        let mut sketch = FrequencySketch::new(64);
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
        let mut sketch = FrequencySketch::new(128);
        for i in 0..1000_u64 {
            sketch.increment(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            if i % 2 == 0 {
                sketch.increment(7);
            }
        }
        assert!(sketch.frequency(7) > sketch.frequency(3_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    }
}
