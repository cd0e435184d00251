//! The dashboard's request count and latency percentiles, kept per worker thread.
//!
//! One histogram under one mutex was written by every request of both workers: each record
//! waited for the lock's cache line to come from the other core. Each thread now records into
//! its own shard (threads beyond the shard count share one, still correctly); the dashboard
//! adds the shards when it asks, which gives exactly the counts one histogram would hold.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use hdrhistogram::Histogram as Hdr;
use parking_lot::Mutex;

/// Shards: more than the server's worker threads, so each worker has its own.
const SHARDS: usize = 8;

/// Requests and their latency in microseconds, one shard per thread.
pub(super) struct ShardedSummary {
    shards: [Shard; SHARDS],
}

/// A shard on its own cache lines, so two workers never write the same line. Its histogram
/// (about 170 KiB) is made by the first request a thread records there.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Option<Summary>>);

struct Summary {
    requests: u64,
    latency_us: Hdr<u64>,
}

impl Default for ShardedSummary {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }
}

/// Microseconds from 1 µs to 10 min at 3 significant digits.
fn latency_histogram() -> Hdr<u64> {
    // The bounds are constants and valid: this cannot fail.
    #[allow(clippy::expect_used)]
    Hdr::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// This thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

impl ShardedSummary {
    /// Counts one request that took `seconds`.
    pub(super) fn record(&self, seconds: f64) {
        let mut shard = self.shards[shard_index()].0.lock();
        let summary = shard.get_or_insert_with(|| Summary {
            requests: 0,
            latency_us: latency_histogram(),
        });
        summary.requests += 1;
        summary.latency_us.saturating_record((seconds * 1e6) as u64);
    }

    /// Requests recorded and their latencies (None before the first), over every shard.
    pub(super) fn merged(&self) -> (u64, Option<Hdr<u64>>) {
        let mut requests = 0;
        let mut merged: Option<Hdr<u64>> = None;
        for shard in &self.shards {
            let shard = shard.0.lock();
            let Some(summary) = shard.as_ref() else {
                continue;
            };
            requests += summary.requests;
            let total = merged.get_or_insert_with(latency_histogram);
            // Same bounds on both sides: the addition cannot run out of range.
            if let Err(err) = total.add(&summary.latency_us) {
                tracing::warn!(error = %err, "could not merge a latency shard");
            }
        }
        (requests, merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_what_one_histogram_would_hold() {
        let summary = ShardedSummary::default();
        assert_eq!(summary.merged().0, 0);
        let mut reference = latency_histogram();
        let samples: Vec<f64> = (1..=400).map(|i| f64::from(i) * 0.000_25).collect();
        std::thread::scope(|scope| {
            for chunk in samples.chunks(100) {
                let summary = &summary;
                scope.spawn(move || chunk.iter().for_each(|s| summary.record(*s)));
            }
        });
        for s in &samples {
            reference.saturating_record((s * 1e6) as u64);
        }
        let (requests, merged) = summary.merged();
        let merged = merged.unwrap_or_else(latency_histogram);
        assert_eq!(requests, 400);
        assert_eq!(merged.len(), 400);
        for q in [0.5, 0.9, 0.99, 1.0] {
            assert_eq!(merged.value_at_quantile(q), reference.value_at_quantile(q));
        }
    }
}
