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

/// The label of query shapes past `max_labelled_fingerprints`, and of the overflow entry.
pub(crate) const OTHER_LABEL: &str = "other";

/// The text shown for statements past `max_fingerprints`.
pub(crate) const OVERFLOW_TEXT: &str = "<other statements: fingerprint limit reached>";

/// Statistics of one query shape.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) fingerprint: Fingerprint,
    /// The `fingerprint` metric label: the id, or [`OTHER_LABEL`].
    pub(crate) label: Arc<str>,
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

#[derive(Debug, Clone)]
pub(crate) struct Cumulative {
    pub(crate) count: u64,
    pub(crate) sum_ns: u64,
    /// Per-bucket (not cumulative) counts; one more than the bounds, for +Inf.
    pub(crate) buckets: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    pub(crate) n_plus_one: u64,
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
    fn new(fingerprint: Fingerprint, label: Arc<str>, buckets: usize) -> Self {
        Self {
            fingerprint,
            label,
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
    max_labelled: usize,
    bucket_count: usize,
}

#[derive(Debug, Default)]
struct ById {
    entries: HashMap<FingerprintId, Arc<Entry>>,
    /// In order of first sight, for stable reports.
    order: Vec<Arc<Entry>>,
    labelled: usize,
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
            max_labelled: config.max_labelled_fingerprints,
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
                let entry = Arc::new(Entry::new(
                    Fingerprint::overflow(),
                    OTHER_LABEL.into(),
                    buckets,
                ));
                by_id.order.push(Arc::clone(&entry));
                entry
            });
            return Arc::clone(overflow);
        }
        let label: Arc<str> = if by_id.labelled < self.max_labelled {
            by_id.labelled += 1;
            fingerprint.id().to_string().into()
        } else {
            OTHER_LABEL.into()
        };
        let entry = Arc::new(Entry::new(fingerprint, label, self.bucket_count));
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

    fn store(max_fingerprints: usize, max_labelled: usize) -> Store {
        Store::new(&TrackerConfig {
            max_fingerprints,
            max_labelled_fingerprints: max_labelled,
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn different_sql_of_one_shape_share_an_entry() {
        let store = store(10, 10);
        let a = store.with_entry("SELECT * FROM t WHERE id IN (?, ?)", Arc::clone);
        let b = store.with_entry("select * from t where id in ($1)", Arc::clone);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(store.entries().len(), 1);
    }

    #[test]
    fn shapes_past_the_limit_share_the_overflow_entry_and_labels_stay_bounded() {
        let store = store(3, 2);
        let labels: Vec<String> = (0..6)
            .map(|i| store.with_entry(&format!("SELECT c{i} FROM t"), |e| e.label.to_string()))
            .collect();
        assert_ne!(labels[0], OTHER_LABEL);
        assert_ne!(labels[1], OTHER_LABEL);
        assert_eq!(&labels[2..], [OTHER_LABEL; 4]);
        let entries = store.entries();
        assert_eq!(entries.len(), 4, "three shapes and the overflow entry");
        assert_eq!(entries[3].fingerprint.text(), OVERFLOW_TEXT);
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
