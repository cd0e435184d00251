//! Which query shapes get their own `fingerprint` label in the Prometheus metrics, and how each
//! shape's counts are split between that label and `other` so that no series ever goes down.
//!
//! # The labelled set
//!
//! At most `max_labelled_fingerprints` shapes have their own label; the others, and the
//! overflow entry past `max_fingerprints`, are counted together under `other`. The set is the
//! shapes that ran the most statements lately: a shape's score is the statements it ran since
//! the previous ranking plus half its previous score, so about the last two ranking intervals
//! count and a shape that stopped running fades out. Statement count, not time spent, because
//! the label exists to show where the traffic is; a rare slow statement already shows in the
//! slow-query counter and log, and ranking by time would let one stalled statement push a hot
//! shape out. Ranking happens while rendering the metrics (never while recording), at most
//! once per `label_ranking_interval`; free places are filled at every render, so the first
//! shapes get a label at once as before.
//!
//! Hysteresis: a shape takes the place of a labelled one only with more than [`SWAP_MARGIN`]
//! times its score, so two shapes of similar traffic do not trade the label at every ranking.
//!
//! # Monotonic series
//!
//! Each shape's cumulative totals are split in two parts: what was exported under its own label
//! and what was exported under `other`. At each render, what the shape recorded since the
//! previous render goes to the part of the label it has now; a part never shrinks. Hence:
//!
//! - a shape promoted from `other` leaves in `other` what `other` already exported, so `other`
//!   never goes down; its own series starts at what it ran since the previous render;
//! - a demoted shape's own series stops being exported, frozen at its last value, and its new
//!   statements count under `other`;
//! - a shape promoted again resumes its own series where it stopped, never below its last
//!   exported value (to Prometheus a gap, then a continuation: `rate()` sees no reset).
//!
//! Every statement is counted in exactly one series and stays there once exported, so the last
//! exported values of all series ever exported sum to the true total, and `sum(rate(..))` over
//! the `fingerprint` label is the true rate at all times. The alternative, moving a demoted
//! shape's whole history into `other` so that the series exported at one instant sum to the
//! total, would show that history as a burst in `rate(other)` and would have to take it back
//! out of `other` (a counter reset) when the shape is promoted again.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::{
    config::TrackerConfig,
    store::{Cumulative, Entry, Store},
};

/// The `fingerprint` label of query shapes outside the labelled set, and of the overflow entry.
pub(crate) const OTHER_LABEL: &str = "other";

/// How many times the score of a labelled shape another shape needs to take its label.
const SWAP_MARGIN: f64 = 1.5;

/// One exported series: operation and `fingerprint` label.
pub(crate) type SeriesKey = (&'static str, Arc<str>);

/// The labelled set and the per-shape split of counts; one per tracker, so every registry that
/// exports the tracker renders the same series.
#[derive(Debug)]
pub(crate) struct Labels {
    max: usize,
    interval: Duration,
    last_ranking: Option<Instant>,
    /// One per store entry, at the same index (the store only appends entries).
    shapes: Vec<Shape>,
    labelled: usize,
}

#[derive(Debug)]
struct Shape {
    /// The shape's own label value: its id.
    label: Arc<str>,
    /// False for the overflow entry, which is always `other`.
    rankable: bool,
    /// Whether the shape has its own label now.
    own: bool,
    /// What was exported under its own label, while it had one.
    in_own: Cumulative,
    /// What was exported under `other`.
    in_other: Cumulative,
    score: f64,
    count_at_ranking: u64,
}

impl Shape {
    fn new(entry: &Entry) -> Self {
        Self {
            label: entry.fingerprint.id().to_string().into(),
            rankable: !entry.overflow,
            own: false,
            in_own: Cumulative::default(),
            in_other: Cumulative::default(),
            score: 0.0,
            count_at_ranking: 0,
        }
    }

    /// The score the shape would have if ranked with `count` statements so far, without decay.
    fn heat(&self, count: u64) -> f64 {
        self.score + count.saturating_sub(self.count_at_ranking) as f64
    }
}

impl Labels {
    pub(crate) fn new(config: &TrackerConfig) -> Self {
        Self {
            max: config.max_labelled_fingerprints,
            interval: config.label_ranking_interval,
            last_ranking: None,
            shapes: Vec::new(),
            labelled: 0,
        }
    }

    /// Updates the labelled set (re-ranking if the interval has passed) and returns every series
    /// to export with its cumulative values.
    ///
    /// Reads the totals while the caller holds the labels' lock: two renders at once must not
    /// attribute an older total after a newer one.
    pub(crate) fn series(
        &mut self,
        store: &Store,
        now: Instant,
    ) -> BTreeMap<SeriesKey, Cumulative> {
        let entries = store.entries();
        let totals: Vec<Cumulative> = entries
            .iter()
            .map(|entry| entry.state.lock().total.clone())
            .collect();
        for entry in entries.get(self.shapes.len()..).unwrap_or_default() {
            self.shapes.push(Shape::new(entry));
        }
        self.relabel(&totals, now);

        let other: Arc<str> = OTHER_LABEL.into();
        let mut series: BTreeMap<SeriesKey, Cumulative> = BTreeMap::new();
        for ((entry, shape), total) in entries.iter().zip(&mut self.shapes).zip(&totals) {
            let operation = entry.fingerprint.operation().as_str();
            if shape.own {
                shape.in_own.grow_to_remainder(total, &shape.in_other);
                series
                    .entry((operation, Arc::clone(&shape.label)))
                    .or_default()
                    .add(&shape.in_own);
            } else {
                shape.in_other.grow_to_remainder(total, &shape.in_own);
            }
            // `other` appears once something is counted in it, and then stays (its parts only
            // grow): no empty `other` series for operations whose shapes all have a label.
            if shape.in_other.count > 0 || shape.in_other.n_plus_one > 0 {
                series
                    .entry((operation, Arc::clone(&other)))
                    .or_default()
                    .add(&shape.in_other);
            }
        }
        series
    }

    fn relabel(&mut self, totals: &[Cumulative], now: Instant) {
        let due = self
            .last_ranking
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            for (shape, total) in self.shapes.iter_mut().zip(totals) {
                shape.score =
                    shape.score / 2.0 + total.count.saturating_sub(shape.count_at_ranking) as f64;
                shape.count_at_ranking = total.count;
            }
            self.last_ranking = Some(now);
        }
        let free = self.max.saturating_sub(self.labelled);
        if !due && free == 0 {
            return;
        }
        let heat =
            |shapes: &[Shape], i: usize| shapes[i].heat(totals.get(i).map_or(0, |t| t.count));

        // Free places go to the hottest unlabelled shapes, at every render.
        let mut challengers: Vec<usize> = (0..self.shapes.len())
            .filter(|&i| self.shapes[i].rankable && !self.shapes[i].own)
            .collect();
        // Hottest first; among equals, the first seen.
        challengers.sort_by(|&a, &b| {
            heat(&self.shapes, b)
                .total_cmp(&heat(&self.shapes, a))
                .then(a.cmp(&b))
        });
        for &i in challengers.iter().take(free) {
            self.shapes[i].own = true;
            self.labelled += 1;
        }
        if !due {
            return;
        }

        // Then the hottest remaining shapes displace the coldest labelled ones, by a margin.
        let challengers = challengers.get(free..).unwrap_or_default();
        let mut incumbents: Vec<usize> = (0..self.shapes.len())
            .filter(|&i| self.shapes[i].own)
            .collect();
        // Coldest first; among equals, the last seen (the first seen keeps its label).
        incumbents.sort_by(|&a, &b| {
            self.shapes[a]
                .score
                .total_cmp(&self.shapes[b].score)
                .then(b.cmp(&a))
        });
        for (&challenger, &incumbent) in challengers.iter().zip(&incumbents) {
            if self.shapes[challenger].score <= SWAP_MARGIN * self.shapes[incumbent].score {
                break;
            }
            self.shapes[challenger].own = true;
            self.shapes[incumbent].own = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn store_and_labels(max_labelled: usize, interval: Duration) -> (Store, Labels) {
        let config = TrackerConfig {
            max_labelled_fingerprints: max_labelled,
            label_ranking_interval: interval,
            ..TrackerConfig::default()
        };
        (Store::new(&config), Labels::new(&config))
    }

    fn run(store: &Store, sql: &str, times: usize) {
        let bounds = TrackerConfig::default().latency_buckets_ns;
        store.with_entry(sql, |entry| {
            for _ in 0..times {
                entry.record(Duration::from_millis(1), false, false, None, &bounds);
            }
        });
    }

    fn labelled(series: &BTreeMap<SeriesKey, Cumulative>) -> Vec<(String, u64)> {
        series
            .iter()
            .map(|((_, label), c)| (label.to_string(), c.count))
            .collect()
    }

    fn id(sql: &str) -> String {
        crate::fingerprint(sql).id().to_string()
    }

    #[test]
    fn shapes_of_similar_traffic_do_not_trade_the_label() {
        let (store, mut labels) = store_and_labels(1, Duration::ZERO);
        let now = Instant::now();
        run(&store, "SELECT a FROM t", 100);
        run(&store, "SELECT b FROM t", 90);
        labels.series(&store, now);
        for round in 0..20 {
            // b is ahead in every other round, never by the margin.
            let (a, b) = if round % 2 == 0 { (90, 120) } else { (120, 90) };
            run(&store, "SELECT a FROM t", a);
            run(&store, "SELECT b FROM t", b);
            let series = labels.series(&store, now);
            assert!(
                series.contains_key(&("select", id("SELECT a FROM t").into())),
                "round {round}: {:?}",
                labelled(&series)
            );
        }
    }

    #[test]
    fn a_shape_that_stops_running_loses_its_label_and_gets_it_back_where_it_stopped() {
        let (store, mut labels) = store_and_labels(1, Duration::ZERO);
        let now = Instant::now();
        let (a, b) = ("SELECT a FROM t", "SELECT b FROM t");
        run(&store, a, 10);
        let first = labels.series(&store, now);
        assert_eq!(labelled(&first), [(id(a), 10)]);
        run(&store, b, 50);
        let second = labels.series(&store, now);
        assert_eq!(
            labelled(&second),
            [(id(b), 50)],
            "b's 50 statements since the last render go to its new label, and `other` \
             is not exported until something is counted in it"
        );
        run(&store, a, 7);
        let third = labels.series(&store, now);
        assert_eq!(labelled(&third), [(id(b), 50), ("other".to_owned(), 7)]);
        run(&store, a, 500);
        let fourth = labels.series(&store, now);
        assert_eq!(
            labelled(&fourth),
            [(id(a), 510), ("other".to_owned(), 7)],
            "a resumes at its last exported 10, plus what it ran since; `other` keeps its 7 \
             and b's series stops, frozen at 50"
        );
    }

    #[test]
    fn the_overflow_entry_is_never_labelled() {
        let config = TrackerConfig {
            max_fingerprints: 1,
            label_ranking_interval: Duration::ZERO,
            ..TrackerConfig::default()
        };
        let (store, mut labels) = (Store::new(&config), Labels::new(&config));
        run(&store, "SELECT a FROM t", 1);
        run(&store, "SELECT b FROM t", 100);
        let series = labels.series(&store, Instant::now());
        assert_eq!(
            labelled(&series),
            [("other".to_owned(), 100), (id("SELECT a FROM t"), 1)],
            "the overflow entry's operation is `other` too"
        );
    }
}
