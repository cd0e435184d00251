//! Query budgets for tests: the statements a future ran, and assertions on their number that
//! print them when they fail.

use std::{fmt, sync::Arc, time::Duration};

use hashbrown::HashMap;

use crate::{
    fingerprint::{FingerprintId, Operation},
    report::{ms, truncate},
};

/// One statement captured by [`QueryTracker::capture`](crate::QueryTracker::capture).
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedStatement {
    /// The SQL as run, with its placeholders (bind values are not kept).
    pub sql: String,
    /// The shape's stable id.
    pub fingerprint_id: FingerprintId,
    /// The shape's normalised SQL.
    pub fingerprint: Arc<str>,
    /// The kind of statement.
    pub operation: Operation,
    /// How long it took.
    pub elapsed: Duration,
    /// Whether it failed.
    pub failed: bool,
}

/// The statements a future ran, in order.
///
/// `Display` numbers them, one per line. The assertions panic with that list and the shapes that
/// repeat, so a failing budget shows at once which query is one too many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryLog {
    statements: Vec<CapturedStatement>,
}

impl QueryLog {
    pub(crate) fn new(statements: Vec<CapturedStatement>) -> Self {
        Self { statements }
    }

    /// The statements, in the order they ran.
    pub fn statements(&self) -> &[CapturedStatement] {
        &self.statements
    }

    /// How many statements ran.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether none ran.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// How many statements were of `operation`.
    pub fn count_of(&self, operation: Operation) -> usize {
        self.statements
            .iter()
            .filter(|s| s.operation == operation)
            .count()
    }

    /// Shapes that ran at least `min` times, most frequent first, with their counts.
    pub fn repeated(&self, min: usize) -> Vec<(&str, usize)> {
        let mut counts: HashMap<FingerprintId, (&str, usize, usize)> = HashMap::new();
        for (i, s) in self.statements.iter().enumerate() {
            counts
                .entry(s.fingerprint_id)
                .or_insert((&s.fingerprint, 0, i))
                .1 += 1;
        }
        let mut repeated: Vec<(&str, usize, usize)> =
            counts.into_values().filter(|(_, n, _)| *n >= min).collect();
        repeated.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        repeated.into_iter().map(|(text, n, _)| (text, n)).collect()
    }

    /// Panics unless exactly `expected` statements ran. See [`assert_queries!`](crate::assert_queries).
    ///
    /// # Panics
    ///
    /// When the count differs, with the numbered statements in the message.
    #[track_caller]
    pub fn assert_count(&self, expected: usize, context: Option<&str>) {
        if self.len() != expected {
            panic!("{}", self.failure("exactly", expected, context));
        }
    }

    /// Panics if more than `max` statements ran. See
    /// [`assert_max_queries!`](crate::assert_max_queries).
    ///
    /// # Panics
    ///
    /// When over budget, with the numbered statements in the message.
    #[track_caller]
    pub fn assert_at_most(&self, max: usize, context: Option<&str>) {
        if self.len() > max {
            panic!("{}", self.failure("at most", max, context));
        }
    }

    /// Panics if one shape ran `threshold` times or more: a likely N+1.
    ///
    /// # Panics
    ///
    /// When a shape repeats, with the numbered statements in the message.
    #[track_caller]
    pub fn assert_no_repeats(&self, threshold: usize, context: Option<&str>) {
        if let Some((shape, count)) = self.repeated(threshold).first() {
            let context = context.map(|c| format!(" ({c})")).unwrap_or_default();
            panic!(
                "likely N+1{context}: {count} × {shape}\n{} statements ran:\n{self}",
                self.len()
            );
        }
    }

    fn failure(&self, relation: &str, expected: usize, context: Option<&str>) -> String {
        let context = context.map(|c| format!(" ({c})")).unwrap_or_default();
        let mut message = format!(
            "query budget{context}: expected {relation} {expected} statement{}, but {} ran",
            if expected == 1 { "" } else { "s" },
            self.len()
        );
        if self.is_empty() {
            message.push_str(
                "\n  (none seen: is a QueryTracker attached to the connection the code used, \
                 and did the statements run in the captured task?)",
            );
        } else {
            message.push_str(":\n");
            message.push_str(&self.to_string());
        }
        let repeated = self.repeated(2);
        if !repeated.is_empty() {
            message.push_str("repeated shapes:\n");
            for (shape, count) in repeated {
                message.push_str(&format!("  {count} × {}\n", truncate(shape, 160)));
            }
        }
        message
    }
}

impl fmt::Display for QueryLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.statements.iter().enumerate() {
            writeln!(
                f,
                "  {:>3}. [{} ms{}] {}",
                i + 1,
                ms(s.elapsed),
                if s.failed { ", failed" } else { "" },
                truncate(&s.sql, 240)
            )?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a QueryLog {
    type Item = &'a CapturedStatement;
    type IntoIter = std::slice::Iter<'a, CapturedStatement>;

    fn into_iter(self) -> Self::IntoIter {
        self.statements.iter()
    }
}

/// Asserts that a [`QueryLog`] holds exactly `n` statements, printing them numbered if not.
///
/// `assert_queries!(log, n)` or `assert_queries!(log, n, "format {}", args)` for context.
///
/// # Examples
///
/// ```should_panic
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let tracker = perf_stats::QueryTracker::new();
/// let mut db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
/// tracker.attach(&mut db);
/// let (_, queries) = tracker
///     .capture(async {
///         for _ in 0..2 {
///             db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await.unwrap();
///         }
///     })
///     .await;
/// // Panics: "query budget (loading the page): expected exactly 1 statement, but 2 ran: ..."
/// perf_stats::assert_queries!(queries, 1, "loading the {}", "page");
/// # }
/// ```
#[macro_export]
macro_rules! assert_queries {
    ($log:expr, $expected:expr $(,)?) => {
        $crate::QueryLog::assert_count(&$log, $expected, ::core::option::Option::None)
    };
    ($log:expr, $expected:expr, $($context:tt)+) => {
        $crate::QueryLog::assert_count(
            &$log,
            $expected,
            ::core::option::Option::Some(&::std::format!($($context)+)),
        )
    };
}

/// Asserts that a [`QueryLog`] holds at most `max` statements, printing them numbered if not.
///
/// `assert_max_queries!(log, max)` or `assert_max_queries!(log, max, "format {}", args)`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let tracker = perf_stats::QueryTracker::new();
/// let mut db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
/// tracker.attach(&mut db);
/// let (_, queries) = tracker
///     .capture(db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")))
///     .await;
/// perf_stats::assert_max_queries!(queries, 2);
/// # }
/// ```
#[macro_export]
macro_rules! assert_max_queries {
    ($log:expr, $max:expr $(,)?) => {
        $crate::QueryLog::assert_at_most(&$log, $max, ::core::option::Option::None)
    };
    ($log:expr, $max:expr, $($context:tt)+) => {
        $crate::QueryLog::assert_at_most(
            &$log,
            $max,
            ::core::option::Option::Some(&::std::format!($($context)+)),
        )
    };
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::QueryTracker;

    async fn log_of(sqls: &[&str]) -> QueryLog {
        let tracker = QueryTracker::new();
        let (_, log) = tracker
            .capture(async {
                for sql in sqls {
                    tracker.record(sql, Duration::from_micros(250), false);
                }
            })
            .await;
        log
    }

    fn panic_message(f: impl FnOnce()) -> String {
        let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion should fail");
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn exact_budget_failure_lists_numbered_statements_and_repeats() {
        let log = log_of(&[
            "SELECT * FROM bookings",
            "SELECT * FROM room_types WHERE id = ?",
            "SELECT * FROM room_types WHERE id = ?",
            "SELECT * FROM room_types WHERE id = ?",
        ])
        .await;
        let message =
            panic_message(|| crate::assert_queries!(log, 2, "bookings page for user {}", 7));
        assert_eq!(
            message,
            "query budget (bookings page for user 7): expected exactly 2 statements, but 4 ran:\n\
             \x20   1. [0.250 ms] SELECT * FROM bookings\n\
             \x20   2. [0.250 ms] SELECT * FROM room_types WHERE id = ?\n\
             \x20   3. [0.250 ms] SELECT * FROM room_types WHERE id = ?\n\
             \x20   4. [0.250 ms] SELECT * FROM room_types WHERE id = ?\n\
             repeated shapes:\n\
             \x20 3 × SELECT * FROM room_types WHERE id = ?\n"
        );
        crate::assert_queries!(log, 4);
    }

    #[tokio::test]
    async fn max_budget_passes_at_the_limit_and_fails_above() {
        let log = log_of(&["SELECT 1", "SELECT 2"]).await;
        crate::assert_max_queries!(log, 2);
        let message = panic_message(|| crate::assert_max_queries!(log, 1));
        assert!(
            message.starts_with("query budget: expected at most 1 statement, but 2 ran:\n"),
            "{message}"
        );
        assert_eq!(log.repeated(2), vec![("SELECT ?", 2)]);
    }

    #[tokio::test]
    async fn an_empty_log_hints_at_a_missing_tracker() {
        let log = log_of(&[]).await;
        let message = panic_message(|| log.assert_count(1, None));
        assert!(message.contains("is a QueryTracker attached"), "{message}");
    }

    #[tokio::test]
    async fn no_repeats_names_the_repeated_shape() {
        let log = log_of(&[
            "SELECT a FROM t WHERE id = 1",
            "SELECT a FROM t WHERE id = 2",
        ])
        .await;
        let message = panic_message(|| log.assert_no_repeats(2, Some("list")));
        assert!(
            message.starts_with("likely N+1 (list): 2 × SELECT a FROM t WHERE id = ?"),
            "{message}"
        );
        log.assert_no_repeats(3, None);
        assert_eq!(log.count_of(Operation::Select), 2);
    }
}
