//! Where statistics live: one entry per query shape, and a sharded cache from SQL text to entry.
//!
//! The hot path (a statement whose SQL was seen before) takes one shard's read lock, hashes the
//! SQL once, and updates its entry under that entry's own mutex. Tasks recording different
//! shapes never wait for each other beyond the read lock of a shard; tasks recording the same
//! shape wait only for a few counter updates.

use std::{
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use parking_lot::{Mutex, RwLock};

use crate::{
    config::TrackerConfig,
    fingerprint::{Fingerprint, FingerprintId, Operation, fingerprint},
    latency::LatencyHistogram,
};

const SHARDS: usize = 16;

/// The text shown for statements past `max_fingerprints`.
pub(crate) const OVERFLOW_TEXT: &str = "<other statements: fingerprint limit reached>";

/// Statistics of one query shape.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) fingerprint: Fingerprint,
    /// The entry of every statement past `max_fingerprints`: never given its own metric label
    /// (its id is no shape's id).
    // Read by the metric labels (feature `prometheus`) and the tests.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) overflow: bool,
    pub(crate) state: Mutex<EntryState>,
}

/// Counters since the last reset (the report) and since start (Prometheus, which must only see
/// counters grow).
#[derive(Debug)]
pub(crate) struct EntryState {
    pub(crate) window: Window,
    pub(crate) total: Cumulative,
}

#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) latency: LatencyHistogram,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    pub(crate) rows: Option<u64>,
}

/// Counts since start. A `Default` one is all zeros with no buckets (no allocation): a missing
/// bucket counts as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cumulative {
    pub(crate) count: u64,
    pub(crate) sum_ns: u64,
    /// Per-bucket (not cumulative) counts; one more than the bounds, for +Inf.
    pub(crate) buckets: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    pub(crate) n_plus_one: u64,
}

// The arithmetic of the metric labels' split counts.
#[cfg(feature = "prometheus")]
impl Cumulative {
    /// Adds `other`, field by field.
    pub(crate) fn add(&mut self, other: &Cumulative) {
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.errors += other.errors;
        self.slow += other.slow;
        self.n_plus_one += other.n_plus_one;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (sum, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *sum += b;
        }
    }

    /// Raises each field to `total - rest` (saturating), never lowering one: what is left of
    /// `total` once `rest` is counted elsewhere, for a part that must only grow.
    pub(crate) fn grow_to_remainder(&mut self, total: &Cumulative, rest: &Cumulative) {
        let remainder = |total: u64, rest: u64, field: &mut u64| {
            *field = (*field).max(total.saturating_sub(rest));
        };
        remainder(total.count, rest.count, &mut self.count);
        remainder(total.sum_ns, rest.sum_ns, &mut self.sum_ns);
        remainder(total.errors, rest.errors, &mut self.errors);
        remainder(total.slow, rest.slow, &mut self.slow);
        remainder(total.n_plus_one, rest.n_plus_one, &mut self.n_plus_one);
        if self.buckets.len() < total.buckets.len() {
            self.buckets.resize(total.buckets.len(), 0);
        }
        for (i, field) in self.buckets.iter_mut().enumerate() {
            let total = total.buckets.get(i).copied().unwrap_or(0);
            let rest = rest.buckets.get(i).copied().unwrap_or(0);
            remainder(total, rest, field);
        }
    }
}

impl Window {
    fn new() -> Self {
        Self {
            latency: LatencyHistogram::new(),
            errors: 0,
            slow: 0,
            rows: None,
        }
    }
}

impl Entry {
    fn new(fingerprint: Fingerprint, overflow: bool, buckets: usize) -> Self {
        Self {
            fingerprint,
            overflow,
            state: Mutex::new(EntryState {
                window: Window::new(),
                total: Cumulative {
                    count: 0,
                    sum_ns: 0,
                    buckets: vec![0; buckets + 1],
                    errors: 0,
                    slow: 0,
                    n_plus_one: 0,
                },
            }),
        }
    }

    /// Adds one execution.
    pub(crate) fn record(
        &self,
        elapsed: Duration,
        failed: bool,
        slow: bool,
        rows: Option<u64>,
        bounds: &[u64],
    ) {
        let nanos = nanos(elapsed);
        let bucket = bounds.partition_point(|&b| b < nanos);
        let mut state = self.state.lock();
        let w = &mut state.window;
        w.latency.record(elapsed);
        w.errors += u64::from(failed);
        w.slow += u64::from(slow);
        if let Some(rows) = rows {
            w.rows = Some(w.rows.unwrap_or(0) + rows);
        }
        let t = &mut state.total;
        t.count += 1;
        t.sum_ns = t.sum_ns.saturating_add(nanos);
        t.errors += u64::from(failed);
        t.slow += u64::from(slow);
        if let Some(b) = t.buckets.get_mut(bucket) {
            *b += 1;
        }
    }

    pub(crate) fn add_n_plus_one(&self) {
        self.state.lock().total.n_plus_one += 1;
    }
}

/// One part of the SQL text → entry cache.
type Shard = RwLock<HashTable<(Box<str>, Arc<Entry>)>>;

/// All entries, and the cache from SQL text to entry.
#[derive(Debug)]
pub(crate) struct Store {
    shards: Box<[Shard]>,
    hasher: DefaultHashBuilder,
    cached: AtomicUsize,
    by_fingerprint: Mutex<ById>,
    max_fingerprints: usize,
    max_cached: usize,
    bucket_count: usize,
}

#[derive(Debug, Default)]
struct ById {
    entries: HashMap<FingerprintId, Arc<Entry>>,
    /// In order of first sight, for stable reports. Only ever appended to: an entry's index
    /// here is stable (the metric labels rely on it).
    order: Vec<Arc<Entry>>,
    overflow: Option<Arc<Entry>>,
}

impl Store {
    pub(crate) fn new(config: &TrackerConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
            hasher: DefaultHashBuilder::default(),
            cached: AtomicUsize::new(0),
            by_fingerprint: Mutex::new(ById::default()),
            max_fingerprints: config.max_fingerprints,
            max_cached: config.max_cached_statements,
            bucket_count: config.latency_buckets_ns.len(),
        }
    }

    /// Runs `f` with the entry of `sql`, creating it on first sight.
    #[inline]
    pub(crate) fn with_entry<R>(&self, sql: &str, f: impl FnOnce(&Arc<Entry>) -> R) -> R {
        let hash = self.hasher.hash_one(sql);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        {
            let table = shard.read();
            if let Some((_, entry)) = table.find(hash, |(key, _)| **key == *sql) {
                return f(entry);
            }
        }
        let entry = self.entry_for(fingerprint(sql));
        if self.cached.load(Ordering::Relaxed) < self.max_cached {
            let mut table = shard.write();
            // Another task may have inserted it meanwhile.
            if table.find(hash, |(key, _)| **key == *sql).is_none() {
                table.insert_unique(hash, (sql.into(), Arc::clone(&entry)), |(key, _)| {
                    self.hasher.hash_one(&**key)
                });
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
        }
        f(&entry)
    }

    fn entry_for(&self, fingerprint: Fingerprint) -> Arc<Entry> {
        let mut by_id = self.by_fingerprint.lock();
        if let Some(entry) = by_id.entries.get(&fingerprint.id()) {
            return Arc::clone(entry);
        }
        if by_id.entries.len() >= self.max_fingerprints {
            let buckets = self.bucket_count;
            let by_id = &mut *by_id;
            let overflow = by_id.overflow.get_or_insert_with(|| {
                let entry = Arc::new(Entry::new(Fingerprint::overflow(), true, buckets));
                by_id.order.push(Arc::clone(&entry));
                entry
            });
            return Arc::clone(overflow);
        }
        let entry = Arc::new(Entry::new(fingerprint, false, self.bucket_count));
        by_id
            .entries
            .insert(entry.fingerprint.id(), Arc::clone(&entry));
        by_id.order.push(Arc::clone(&entry));
        entry
    }

    /// Every entry, in order of first sight.
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.by_fingerprint.lock().order.clone()
    }

    /// The entry of a fingerprint id, if that shape was seen.
    pub(crate) fn entry(&self, id: FingerprintId) -> Option<Arc<Entry>> {
        self.by_fingerprint.lock().entries.get(&id).cloned()
    }

    /// Forgets the statistics since start of the report window (not the cumulative counters).
    pub(crate) fn reset_windows(&self) {
        for entry in self.entries() {
            entry.state.lock().window = Window::new();
        }
    }
}

impl Fingerprint {
    fn overflow() -> Self {
        Self::from_parts(FingerprintId(0), OVERFLOW_TEXT.into(), Operation::Other)
    }
}

/// Converts a duration to nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_fingerprints: usize) -> Store {
        Store::new(&TrackerConfig {
            max_fingerprints,
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn different_sql_of_one_shape_share_an_entry() {
        let store = store(10);
        let a = store.with_entry("SELECT * FROM t WHERE id IN (?, ?)", Arc::clone);
        let b = store.with_entry("select * from t where id in ($1)", Arc::clone);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(store.entries().len(), 1);
    }

    #[test]
    fn shapes_past_the_limit_share_the_overflow_entry() {
        let store = store(3);
        let overflow: Vec<bool> = (0..6)
            .map(|i| store.with_entry(&format!("SELECT c{i} FROM t"), |e| e.overflow))
            .collect();
        assert_eq!(overflow, [false, false, false, true, true, true]);
        let entries = store.entries();
        assert_eq!(entries.len(), 4, "three shapes and the overflow entry");
        assert_eq!(entries[3].fingerprint.text(), OVERFLOW_TEXT);
        assert!(Arc::ptr_eq(
            &entries[3],
            &store.with_entry("SELECT c9 FROM t", Arc::clone)
        ));
    }

    #[test]
    fn a_part_grown_to_the_remainder_never_goes_down() {
        let total = Cumulative {
            count: 10,
            sum_ns: 100,
            buckets: vec![4, 6],
            errors: 2,
            slow: 1,
            n_plus_one: 0,
        };
        let rest = Cumulative {
            count: 3,
            sum_ns: 30,
            buckets: vec![3],
            ..Cumulative::default()
        };
        let mut part = Cumulative::default();
        part.grow_to_remainder(&total, &rest);
        assert_eq!(
            part,
            Cumulative {
                count: 7,
                sum_ns: 70,
                buckets: vec![1, 6],
                errors: 2,
                slow: 1,
                n_plus_one: 0,
            }
        );
        // A stale total (read before the one already counted) must not lower anything.
        part.grow_to_remainder(&Cumulative::default(), &rest);
        assert_eq!(part.count, 7);
        let mut sum = part.clone();
        sum.add(&rest);
        assert_eq!(sum, total);
    }

    #[test]
    fn buckets_count_each_value_once_with_inclusive_upper_bounds() {
        let bounds = [1_000, 2_000];
        let store = Store::new(&TrackerConfig {
            latency_buckets_ns: bounds.to_vec(),
            ..TrackerConfig::default()
        });
        store.with_entry("SELECT 1", |e| {
            e.record(Duration::from_nanos(1_000), false, false, None, &bounds);
            e.record(Duration::from_nanos(1_500), false, false, None, &bounds);
            e.record(Duration::from_nanos(5_000), true, false, Some(3), &bounds);
        });
        let entry = &store.entries()[0];
        let state = entry.state.lock();
        assert_eq!(state.total.buckets, vec![1, 1, 1]);
        assert_eq!(state.total.count, 3);
        assert_eq!(state.total.errors, 1);
        assert_eq!(state.window.rows, Some(3));
        assert_eq!(
            state.window.latency.summary().max,
            Duration::from_nanos(5_000)
        );
    }
}
