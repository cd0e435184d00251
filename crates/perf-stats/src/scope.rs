//! Scopes: the statements one future runs, counted by shape (N+1 detection) or captured in order
//! (query budgets). A tokio task-local carries the innermost frame; frames link to the enclosing
//! one so a statement counts in every scope around it.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use hashbrown::HashMap;
use parking_lot::Mutex;
use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use tokio::task::futures::TaskLocalFuture;

use crate::{
    QueryTracker,
    budget::{CapturedStatement, QueryLog},
    fingerprint::{FingerprintId, Operation},
    report::millis,
    store::Entry,
};

tokio::task_local! {
    static CURRENT: Arc<Frame>;
}

/// The innermost frame of the running task, if any.
#[inline]
pub(crate) fn current() -> Option<Arc<Frame>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `future` with `frame` as the innermost frame.
pub(crate) async fn run_in<F: Future>(frame: Arc<Frame>, future: F) -> F::Output {
    CURRENT.scope(frame, future).await
}

pin_project! {
    /// A future running in a [scope](QueryTracker::scope) whose report nobody reads: made by
    /// [`QueryTracker::scoped`]. The scope is evaluated (N+1 findings logged and counted) when
    /// the future finishes or is dropped unfinished, as with [`QueryTracker::scope`].
    ///
    /// A named type rather than an `async` block, so a tower service can return it without
    /// boxing it once per request.
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F: Future> {
        #[pin]
        future: TaskLocalFuture<Arc<Frame>, F>,
        run: ScopeRun,
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(tracker: QueryTracker, label: Arc<str>, future: F) -> Self {
        let frame = Arc::new(Frame::scope(current(), label));
        Self {
            run: ScopeRun::new(tracker, Arc::clone(&frame)),
            future: CURRENT.scope(frame, future),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.future.poll(cx));
        this.run.evaluate();
        Poll::Ready(output)
    }
}

impl<F: Future> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("label", &self.run.frame.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum FrameKind {
    /// Counts shapes for N+1 detection. The label is shared: a server hands every request of a
    /// route the same one instead of formatting it per request.
    Scope { label: Arc<str> },
    /// Keeps every statement, for query budgets.
    Capture,
}

/// One level of scoping.
#[derive(Debug)]
pub(crate) struct Frame {
    parent: Option<Arc<Frame>>,
    kind: FrameKind,
    state: Mutex<FrameState>,
}

#[derive(Debug, Default)]
struct FrameState {
    statements: u32,
    errors: u32,
    total: Duration,
    shapes: HashMap<FingerprintId, (Arc<Entry>, u32)>,
    captured: Vec<CapturedStatement>,
}

impl Frame {
    pub(crate) fn scope(parent: Option<Arc<Frame>>, label: Arc<str>) -> Self {
        Self {
            parent,
            kind: FrameKind::Scope { label },
            state: Mutex::default(),
        }
    }

    pub(crate) fn capture(parent: Option<Arc<Frame>>) -> Self {
        Self {
            parent,
            kind: FrameKind::Capture,
            state: Mutex::default(),
        }
    }

    /// Counts one statement in this frame and every enclosing one.
    pub(crate) fn record(&self, entry: &Arc<Entry>, sql: &str, elapsed: Duration, failed: bool) {
        let mut frame = Some(self);
        while let Some(f) = frame {
            f.record_here(entry, sql, elapsed, failed);
            frame = f.parent.as_deref();
        }
    }

    fn record_here(&self, entry: &Arc<Entry>, sql: &str, elapsed: Duration, failed: bool) {
        let mut state = self.state.lock();
        state.statements += 1;
        state.errors += u32::from(failed);
        state.total += elapsed;
        match self.kind {
            FrameKind::Scope { .. } => {
                state
                    .shapes
                    .entry(entry.fingerprint.id())
                    .or_insert_with(|| (Arc::clone(entry), 0))
                    .1 += 1;
            }
            FrameKind::Capture => state.captured.push(CapturedStatement {
                sql: sql.to_owned(),
                fingerprint_id: entry.fingerprint.id(),
                fingerprint: entry.fingerprint.shared_text(),
                operation: entry.fingerprint.operation(),
                elapsed,
                failed,
            }),
        }
    }

    /// The statements captured so far, leaving none behind.
    pub(crate) fn take_log(&self) -> QueryLog {
        QueryLog::new(std::mem::take(&mut self.state.lock().captured))
    }
}

/// What one [scope](QueryTracker::scope) ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeReport {
    /// The scope's label.
    pub label: String,
    /// Statements run.
    pub statements: u32,
    /// Statements that failed.
    pub errors: u32,
    /// Time the database spent on them.
    #[serde(rename = "database_time_ms", with = "millis")]
    pub database_time: Duration,
    /// Shapes repeated at least the N+1 threshold, most repeated first.
    pub repeated: Vec<RepeatedQuery>,
}

impl ScopeReport {
    /// Whether a likely N+1 was found.
    pub fn has_n_plus_one(&self) -> bool {
        !self.repeated.is_empty()
    }
}

/// A shape repeated within one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatedQuery {
    /// The shape's stable id.
    pub fingerprint_id: FingerprintId,
    /// Its normalised SQL.
    pub fingerprint: String,
    /// The kind of statement.
    pub operation: Operation,
    /// Times it ran in the scope.
    pub count: u32,
}

/// Evaluates a scope when it finishes, or when it is dropped unfinished (a cancelled request
/// still ran its statements).
pub(crate) struct ScopeRun {
    tracker: QueryTracker,
    frame: Arc<Frame>,
    finished: bool,
}

impl ScopeRun {
    pub(crate) fn new(tracker: QueryTracker, frame: Arc<Frame>) -> Self {
        Self {
            tracker,
            frame,
            finished: false,
        }
    }

    /// Evaluates the scope and reports what it ran.
    pub(crate) fn finish(&mut self) -> ScopeReport {
        let (state, repeated) = self.evaluate_state();
        ScopeReport {
            label: self.label().to_owned(),
            statements: state.statements,
            errors: state.errors,
            database_time: state.total,
            repeated: repeated
                .into_iter()
                .map(|(entry, count)| RepeatedQuery {
                    fingerprint_id: entry.fingerprint.id(),
                    fingerprint: entry.fingerprint.text().to_owned(),
                    operation: entry.fingerprint.operation(),
                    count,
                })
                .collect(),
        }
    }

    /// Evaluates the scope (its N+1 findings are logged and counted) without a report: what a
    /// request whose report nobody reads needs, with no allocation when nothing repeated.
    pub(crate) fn evaluate(&mut self) {
        self.evaluate_state();
    }

    fn label(&self) -> &str {
        match &self.frame.kind {
            FrameKind::Scope { label } => label,
            FrameKind::Capture => "",
        }
    }

    /// Takes the frame's counts and records each shape repeated at least the threshold, most
    /// repeated first.
    fn evaluate_state(&mut self) -> (FrameState, Vec<(Arc<Entry>, u32)>) {
        self.finished = true;
        let threshold = self.tracker.n_plus_one_threshold();
        let state = std::mem::take(&mut *self.frame.state.lock());
        let mut repeated: Vec<(Arc<Entry>, u32)> = state
            .shapes
            .iter()
            .filter(|(_, (_, count))| *count >= threshold)
            .map(|(_, (entry, count))| (Arc::clone(entry), *count))
            .collect();
        repeated.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.fingerprint.text().cmp(b.0.fingerprint.text()))
        });
        for (entry, count) in &repeated {
            self.tracker.inner.n_plus_one(entry, self.label(), *count);
        }
        (state, repeated)
    }
}

impl Drop for ScopeRun {
    fn drop(&mut self) {
        if !self.finished {
            self.evaluate();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> QueryTracker {
        QueryTracker::builder()
            .n_plus_one_threshold(3)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn repeats_at_the_threshold_are_reported_and_below_are_not() {
        let tracker = tracker();
        let (_, scope) = tracker
            .scope("job", async {
                for _ in 0..3 {
                    tracker.record(
                        "SELECT * FROM a WHERE id = ?",
                        Duration::from_micros(5),
                        false,
                    );
                }
                for _ in 0..2 {
                    tracker.record(
                        "SELECT * FROM b WHERE id = ?",
                        Duration::from_micros(5),
                        false,
                    );
                }
            })
            .await;
        assert_eq!(scope.statements, 5);
        assert_eq!(scope.repeated.len(), 1);
        assert_eq!(scope.repeated[0].count, 3);
        assert_eq!(
            scope.repeated[0].fingerprint,
            "SELECT * FROM a WHERE id = ?"
        );
        let findings = tracker.report().n_plus_one;
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].scope, "job");
    }

    #[tokio::test]
    async fn statements_outside_any_scope_are_not_attributed() {
        let tracker = tracker();
        for _ in 0..10 {
            tracker.record("SELECT 1", Duration::from_micros(5), false);
        }
        let (_, scope) = tracker.scope("empty", async {}).await;
        assert_eq!(scope.statements, 0);
        assert!(tracker.report().n_plus_one.is_empty());
    }

    #[tokio::test]
    async fn nested_scopes_both_count_and_findings_aggregate_per_label() {
        let tracker = tracker();
        for _ in 0..2 {
            let ((_, inner), outer) = tracker
                .scope("outer", async {
                    tracker
                        .scope("inner", async {
                            for _ in 0..4 {
                                tracker.record("SELECT ?", Duration::from_micros(1), false);
                            }
                        })
                        .await
                })
                .await;
            assert_eq!(inner.statements, 4);
            assert_eq!(outer.statements, 4);
        }
        let findings = tracker.report().n_plus_one;
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            findings
                .iter()
                .all(|f| f.occurrences == 2 && f.max_repeats == 4)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_scope_is_still_evaluated() {
        let tracker = tracker();
        let scoped = tracker.scope("cancelled", async {
            for _ in 0..3 {
                tracker.record("SELECT ?", Duration::from_micros(1), false);
            }
            std::future::pending::<()>().await;
        });
        // Poll once (running the statements), then drop it.
        let _ = tokio::time::timeout(Duration::from_millis(1), scoped).await;
        assert_eq!(tracker.report().n_plus_one.len(), 1);
    }
}
