//! Progress of long operations, reported through a callback the caller draws as it likes.

use serde::Serialize;
use tokio::sync::watch;

use crate::{Error, Result};

/// What a long operation is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Reading the SQLite snapshot and compressing it (bytes of the database).
    Snapshot,
    /// Compressing pg_dump's output (bytes of the dump; the total is the database's size,
    /// an estimate).
    Dump,
    /// Reading and decompressing a backup file (bytes of the file).
    Decompress,
    /// Checking the restored copy (integrity check, foreign keys, row counts).
    Check,
}

/// One progress report: `done` out of `total` units of `phase` (bytes unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Units done so far.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
}

/// The callback type long operations take: `&|p: Progress| bar.set_position(p.done)`, or
/// `&|_| {}` for none. It is called on the caller's task, never from a worker thread.
pub type ProgressFn<'a> = dyn Fn(Progress) + Send + Sync + 'a;

/// The sending half handed to blocking work.
#[derive(Debug)]
pub(crate) struct ProgressTx {
    tx: Option<watch::Sender<Option<Progress>>>,
    phase: Phase,
}

impl ProgressTx {
    /// A sender that reports nowhere.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self {
            tx: None,
            phase: Phase::Snapshot,
        }
    }

    /// Reports `done` of `total`. Only the latest report is kept until the caller looks.
    pub(crate) fn report(&self, done: u64, total: Option<u64>) {
        if let Some(tx) = &self.tx {
            tx.send_replace(Some(Progress {
                phase: self.phase,
                done,
                total,
            }));
        }
    }
}

/// Runs blocking work on tokio's blocking pool, relaying its progress reports to `progress`
/// on the calling task.
pub(crate) async fn run_blocking<T, F>(
    phase: Phase,
    progress: &ProgressFn<'_>,
    work: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(ProgressTx) -> T + Send + 'static,
{
    let (tx, mut rx) = watch::channel(None);
    let mut handle = tokio::task::spawn_blocking(move || {
        work(ProgressTx {
            tx: Some(tx),
            phase,
        })
    });
    let mut sender_alive = true;
    let mut last = None;
    let mut relay = |latest: Option<Progress>| {
        if latest.is_some() && latest != last {
            last = latest;
            if let Some(p) = latest {
                progress(p);
            }
        }
    };
    loop {
        tokio::select! {
            joined = &mut handle => {
                relay(*rx.borrow());
                return joined.map_err(|e| Error::Internal(format!("a backup worker failed: {e}")));
            }
            changed = rx.changed(), if sender_alive => match changed {
                Ok(()) => relay(*rx.borrow_and_update()),
                Err(_) => sender_alive = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn reports_reach_the_callback_and_end_with_the_last_one() {
        let seen = Mutex::new(Vec::new());
        let result = run_blocking(Phase::Decompress, &|p| seen.lock().unwrap().push(p), |tx| {
            for i in 1..=100u64 {
                tx.report(i, Some(100));
            }
            42
        })
        .await
        .unwrap();
        assert_eq!(result, 42);
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen.last(),
            Some(&Progress {
                phase: Phase::Decompress,
                done: 100,
                total: Some(100)
            })
        );
        assert!(
            seen.windows(2).all(|w| w[0].done < w[1].done),
            "no report twice"
        );
    }
}
