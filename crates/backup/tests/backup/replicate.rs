//! Continuous replication of SQLite: every committed change shipped, restorable exactly, on
//! both kinds of repository.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use backup::{
    RestoreOptions, Source,
    replicate::{ReplicationStatus, Replicator, ReplicatorOptions, RestorePoint},
};
use db_connect::testing::TestDatabase;
use sea_orm::ConnectionTrait;
use tokio::sync::{oneshot, watch};

use crate::support::{INSERT_BOOKING, TestRepo, contents, seeded};

/// Options for tests: quick polls and a small log, so checkpoints and log restarts happen
/// many times in a few seconds.
pub(crate) fn fast() -> ReplicatorOptions {
    ReplicatorOptions {
        interval: Duration::from_millis(200),
        poll: Duration::from_millis(10),
        heartbeat: Duration::from_millis(500),
        checkpoint_bytes: 64 << 10,
        retry_max: Duration::from_millis(200),
        ..ReplicatorOptions::default()
    }
}

/// A replicator running in the background of a test.
pub(crate) struct Running {
    pub(crate) status: watch::Receiver<ReplicationStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<backup::Result<ReplicationStatus>>,
}

impl Running {
    pub(crate) fn start(r: &TestRepo, db: &TestDatabase, options: ReplicatorOptions) -> Self {
        let replicator = Replicator::new(r.repo.clone(), db.sqlite_path().unwrap(), options);
        let status = replicator.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(replicator.run(async {
            let _ = stopped.await;
        }));
        Self {
            status,
            stop: Some(stop),
            task,
        }
    }

    /// Waits until everything committed so far is shipped.
    pub(crate) async fn caught_up(&mut self) {
        let since = chrono::Utc::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            {
                let s = self.status.borrow_and_update();
                if s.synced_at.is_some_and(|t| t > since) && s.pending_transactions == 0 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replication did not catch up: {:?}",
                *self.status.borrow()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), self.status.changed()).await;
        }
    }

    pub(crate) async fn stop(mut self) -> ReplicationStatus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap()
    }
}

/// Writers insert bookings while the replicator runs (the small log makes it checkpoint and
/// the log restart many times): a restore of the latest state is exactly the live database.
async fn the_latest_state_is_restored_exactly(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let mut running = Running::start(&r, &db, fast());
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let conn = db_connect::connect(db.url()).await.unwrap();
        let (stop, written) = (stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                conn.execute_unprepared(INSERT_BOOKING).await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            conn.close().await.unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    running.caught_up().await;
    let status = running.stop().await;
    assert!(written.load(Ordering::Relaxed) > 100);
    assert!(status.last_error.is_none(), "{status:?}");
    assert_eq!(status.generations_started, 1, "{status:?}");
    assert!(status.segments > 3, "{status:?}");
    assert!(
        status.checkpoints > 2 && status.log_restarts > 2,
        "the log was checkpointed and restarted under the replicator: {status:?}"
    );

    let live = contents(db.connection()).await;
    let target = r.scratch.path().join("latest.sqlite");
    let report = r
        .repo
        .restore_to_point(
            RestorePoint::Latest,
            None,
            &Source::sqlite(&target),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    let replayed = report.replayed.unwrap();
    assert!(replayed.transactions > 100, "{replayed:?}");
    let restored = db_connect::connect(&format!("sqlite://{}", target.display()))
        .await
        .unwrap();
    assert_eq!(contents(&restored).await, live, "every table, every row");
    restored.close().await.unwrap();
}

crate::support::test_on_repositories!(sqlite; the_latest_state_is_restored_exactly);
