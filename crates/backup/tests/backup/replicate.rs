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
        Self::into(r.repo.clone(), db, options)
    }

    pub(crate) fn into(
        repo: backup::BackupRepository,
        db: &TestDatabase,
        options: ReplicatorOptions,
    ) -> Self {
        let replicator = Replicator::new(repo, db.sqlite_path().unwrap(), options);
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

    /// Waits until the replicator has begun its line (its first snapshot is shipped).
    pub(crate) async fn line_started(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.status.borrow_and_update().generation.is_none() {
            self.assert_running().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "replication never began a line: {:?}",
                *self.status.borrow()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), self.status.changed()).await;
        }
    }

    /// Fails with the replicator's own error when it has stopped by itself.
    async fn assert_running(&mut self) {
        if self.task.is_finished() {
            let ended = (&mut self.task).await;
            panic!("the replicator stopped by itself: {ended:?}");
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
            self.assert_running().await;
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
    // This test is about the latest state: the writers start once the line has begun.
    running.line_started().await;
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
    // At least 3 s, and on until the log was checkpointed and restarted a few times under the
    // replicator (a loaded machine writes and checkpoints more slowly).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (checkpoints, restarts) = {
            let s = running.status.borrow();
            (s.checkpoints, s.log_restarts)
        };
        if (checkpoints > 2 && restarts > 2) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// Writers that insert a booking every few milliseconds until stopped, on connections that
/// leave checkpoints to the replicator (`wal_autocheckpoint = 0`, as the docs ask).
pub(crate) struct Writers {
    stop: Arc<AtomicBool>,
    pub(crate) written: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    pub(crate) async fn start(db: &TestDatabase, count: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..count {
            let conn = crate::support::application_writer(db).await;
            let (stop, written) = (stop.clone(), written.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    conn.execute_unprepared(INSERT_BOOKING).await.unwrap();
                    written.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                conn.close().await.unwrap();
            }));
        }
        Self {
            stop,
            written,
            tasks,
        }
    }

    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.written.load(Ordering::Relaxed)
    }
}

/// Restores the latest state into a new file and returns its content.
pub(crate) async fn restored_latest(
    repo: &backup::BackupRepository,
    dir: &std::path::Path,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    let target = dir.join(name);
    repo.restore_to_point(
        RestorePoint::Latest,
        None,
        &Source::sqlite(&target),
        &RestoreOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let conn = db_connect::connect(&format!("sqlite://{}", target.display()))
        .await
        .unwrap();
    let restored = contents(&conn).await;
    conn.close().await.unwrap();
    restored
}

/// How the object store fails in [`store_outage`].
#[cfg(feature = "s3")]
#[derive(Debug, Clone, Copy)]
enum StoreFault {
    /// Connections dropped, new ones refused: the store is down and says so.
    Down,
    /// Connections kept open and silent, new ones too, and the silent ones stay silent after
    /// the store is back: a network that drops packets.
    Silent,
}

/// The object store goes down (connections dropped, new ones refused) while writers keep
/// writing: the lag shows in monitor meanwhile, nothing is lost, and once the store is back
/// the replicator catches up by itself. The outage is a few seconds here; its length changes
/// nothing but the size of the backlog.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_store_outage_loses_nothing_and_shows_in_monitor() {
    store_outage(StoreFault::Down).await;
}

/// The same with a store that stops answering rather than refusing: requests in flight wait
/// on connections that will never answer, even after the store is back. The replicator gives
/// up on them and catches up on new connections within seconds of the store's return, not
/// after a whole request timeout per connection.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_stops_answering_loses_nothing_and_recovers_within_seconds() {
    store_outage(StoreFault::Silent).await;
}

#[cfg(feature = "s3")]
async fn store_outage(fault: StoreFault) {
    use backup::{
        BackupRepository, RepositoryLocation,
        monitor::{HealthPolicy, Status, assess},
    };
    use db_connect::testing::MotoServer;

    use crate::support::{Proxy, s3_settings};

    /// How soon after the store is back replication must have caught up: a request that was
    /// waiting on a silent connection gives up after 10 s (`ANSWER_WAIT` of the S3 store),
    /// then the retry goes to a new one.
    const RECOVERY: Duration = Duration::from_secs(30);

    let Some(moto) = MotoServer::start() else {
        return;
    };
    let db = seeded(TestDatabase::sqlite().await).await;
    let bucket = moto.bucket("outage");
    let proxy = Proxy::start(moto.port()).await;
    let scratch = tempfile::tempdir().unwrap();
    let open = |url: String| {
        BackupRepository::builder(RepositoryLocation::parse(&url).unwrap())
            .s3_settings(s3_settings())
            .scratch_dir(scratch.path())
            .open()
            .unwrap()
    };
    let direct = bucket.url("db");
    let through_proxy = direct.replace(
        &moto.endpoint(),
        &format!("http://127.0.0.1:{}", proxy.port()),
    );
    let replicated = open(through_proxy);
    let observed = open(direct);
    let policy = HealthPolicy {
        warn_lag: Duration::from_millis(1_000),
        crit_lag: Duration::from_millis(2_000),
        min_backups: 1,
        min_free_bytes: 0,
        ..HealthPolicy::default()
    };
    let lag = |report: &backup::monitor::HealthReport| {
        report
            .checks
            .iter()
            .find(|c| c.name == "replication")
            .unwrap()
            .clone()
    };

    let mut running = Running::into(replicated, &db, fast());
    let writers = Writers::start(&db, 2).await;
    running.caught_up().await;
    let healthy = assess(&observed, &policy, chrono::Utc::now()).await;
    assert_eq!(
        lag(&healthy).status,
        Status::Ok,
        "{}",
        healthy.nagios_line()
    );

    match fault {
        StoreFault::Down => proxy.cut(),
        StoreFault::Silent => proxy.stall(),
    }
    let cut_at = writers.written.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = assess(&observed, &policy, chrono::Utc::now()).await;
    assert_eq!(
        lag(&during).status,
        Status::Critical,
        "{}",
        during.nagios_line()
    );
    if let StoreFault::Down = fault {
        // A refusal is an error at once; silence only once the wait for an answer is over.
        assert!(
            running.status.borrow().last_error.is_some(),
            "{:?}",
            *running.status.borrow()
        );
    }
    assert!(
        writers.written.load(Ordering::Relaxed) > cut_at + 100,
        "the application kept writing"
    );

    proxy.restore();
    let back = tokio::time::Instant::now();
    running.caught_up().await;
    let recovered = back.elapsed();
    eprintln!("{fault:?}: caught up {recovered:?} after the store was back");
    assert!(
        recovered < RECOVERY,
        "caught up {recovered:?} after the store was back ({fault:?})"
    );
    let written = writers.stop().await;
    running.caught_up().await;
    // The lag is the age of the newest segment: back under the warning (1 s) once a heartbeat
    // (every 0.5 s here) follows the backlog, which on a loaded machine may take a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let after = assess(&observed, &policy, chrono::Utc::now()).await;
        if lag(&after).status == Status::Ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            after.nagios_line()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = running.stop().await;
    assert!(status.last_error.is_none(), "{status:?}");
    assert_eq!(
        status.generations_started, 1,
        "no new line was needed: {status:?}"
    );

    let live = contents(db.connection()).await;
    assert!(written > 200);
    assert_eq!(
        restored_latest(&observed, scratch.path(), "after-outage.sqlite").await,
        live,
        "every booking written during the outage is in the repository"
    );
}

/// A copy restored from the repository never writes the original's line: a copy at another
/// path is another database (refused outright), and a copy restored over the original's own
/// path starts a generation of its own, leaving the original's segments as they were and
/// still restorable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restored_copy_never_writes_the_original_line() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let r = TestRepo::local();
    let path = db.sqlite_path().unwrap();
    let mut running = Running::start(&r, &db, fast());
    let writers = Writers::start(&db, 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    writers.stop().await;
    running.caught_up().await;
    let first = running.stop().await;
    let original_line = first.generation.clone().unwrap();
    let original = contents(db.connection()).await;
    let line_objects = |r: &TestRepo| -> Vec<(String, Vec<u8>)> {
        r.keys()
            .into_iter()
            .filter(|k| k.starts_with(&format!("generations/{original_line}/")))
            .map(|k| {
                let bytes = r.read(&k);
                (k, bytes)
            })
            .collect()
    };
    let before = line_objects(&r);
    assert!(before.len() > 2, "{before:?}");

    // Elsewhere: another file is another database.
    let elsewhere = r.scratch.path().join("elsewhere.sqlite");
    r.repo
        .restore_to_point(
            RestorePoint::Latest,
            None,
            &Source::sqlite(&elsewhere),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    let err = Replicator::new(r.repo.clone(), &elsewhere, fast())
        .run(std::future::ready(()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, backup::Error::ForeignDatabase { .. }),
        "{err}"
    );

    // The same path, another file: the application stops, the latest state is restored over
    // it, and replication starts again.
    db.connection().close_by_ref().await.unwrap();
    r.repo
        .restore_to_point(
            RestorePoint::Latest,
            None,
            &Source::sqlite(&path),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    let conn = crate::support::reopen(&db).await;
    let mut running = Running::into(r.repo.clone(), &db, fast());
    conn.execute_unprepared(INSERT_BOOKING).await.unwrap();
    running.caught_up().await;
    let second = running.stop().await;
    let new_line = second.generation.unwrap();
    assert_ne!(new_line, original_line, "a new generation");
    assert_eq!(line_objects(&r), before, "the original line is untouched");
    let generation = r.repo.restorable_windows().await.unwrap();
    let why = &generation.last().unwrap().why;
    assert!(why.contains("no longer continues"), "{why}");

    // Both lines restore: the original's to what it held, the new one's with the insert.
    let target = r.scratch.path().join("original-line.sqlite");
    r.repo
        .restore_to_point(
            RestorePoint::Latest,
            Some(&original_line),
            &Source::sqlite(&target),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    let restored = db_connect::connect(&format!("sqlite://{}", target.display()))
        .await
        .unwrap();
    assert_eq!(contents(&restored).await, original);
    restored.close().await.unwrap();
    assert_eq!(
        restored_latest(&r.repo, r.scratch.path(), "new-line.sqlite").await,
        contents(&conn).await
    );
    conn.close().await.unwrap();
}

/// Prune keeps what the kept snapshots need: the segments after the oldest kept snapshot of
/// a generation, and says which it deletes and why. The latest state still restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_removes_the_segments_no_kept_snapshot_needs() {
    let db = seeded(TestDatabase::sqlite().await).await;
    let r = TestRepo::local();
    let options = ReplicatorOptions {
        snapshot_every: Duration::from_millis(700),
        ..fast()
    };
    let mut running = Running::start(&r, &db, options);
    let writers = Writers::start(&db, 1).await;
    // Until three snapshots exist, however slow the machine is today.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while running.status.borrow_and_update().snapshots < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no third snapshot: {:?}",
            *running.status.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), running.status.changed()).await;
    }
    writers.stop().await;
    running.caught_up().await;
    let status = running.stop().await;
    assert!(status.snapshots >= 3, "{status:?}");
    let generation = status.generation.unwrap();
    r.repo
        .verify_all(&backup::VerifyOptions::default(), &|_| {})
        .await
        .unwrap();
    let listing = r.repo.list().await.unwrap();
    let snapshots: Vec<u64> = listing
        .backups
        .iter()
        .filter_map(|m| m.replication.as_ref().map(|p| p.seq))
        .collect();
    let newest_seq = *snapshots.iter().max().unwrap();
    let segments_before = r.repo.restorable_windows().await.unwrap()[0].segments;

    let policy = backup::RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        pre_migration_newer: 1,
    };
    let plan = r
        .repo
        .prune(&policy, chrono::Utc::now(), true)
        .await
        .unwrap();
    assert_eq!(plan.generations.len(), 1);
    let g = &plan.generations[0];
    assert_eq!(g.generation, generation);
    assert_eq!(g.deleted_segments, Some((1, newest_seq)), "{g:?}");
    assert!(g.why.contains("oldest kept snapshot"), "{}", g.why);
    assert!(!g.removes_generation);

    let report = r
        .repo
        .prune(&policy, chrono::Utc::now(), false)
        .await
        .unwrap();
    assert_eq!(report.deleted.len(), snapshots.len() - 1);
    let window = &r.repo.restorable_windows().await.unwrap()[0];
    assert_eq!(window.segments, segments_before - newest_seq as usize);
    assert_eq!(
        restored_latest(&r.repo, r.scratch.path(), "after-prune.sqlite").await,
        contents(db.connection()).await
    );
}

/// Regression: the log was read a segment's worth at a time, and a transaction larger than
/// that had no commit frame in any read, so it was never read, nor anything after it, while
/// heartbeats went on saying all was shipped. One transaction of many bookings (well over the
/// 64 KiB segments here) and small ones after it all reach the repository.
async fn a_transaction_larger_than_a_segment_is_shipped(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let options = ReplicatorOptions {
        segment_bytes: 64 << 10,
        ..fast()
    };
    let mut running = Running::start(&r, &db, options);
    running.caught_up().await;
    let conn = db.connection();
    conn.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
         INSERT INTO bookings (user_id, room_type_id, start_date, end_date, rooms_booked, status, total_price, deposit_amount, is_deposit_paid, created_at, updated_at) \
         SELECT b.user_id, b.room_type_id, b.start_date, b.end_date, b.rooms_booked, b.status, b.total_price + n.i, b.deposit_amount, b.is_deposit_paid, b.created_at, b.updated_at \
         FROM n, bookings b WHERE b.id = (SELECT min(id) FROM bookings)",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        conn.execute_unprepared(INSERT_BOOKING).await.unwrap();
    }
    running.caught_up().await;
    let status = running.stop().await;
    assert!(status.last_error.is_none(), "{status:?}");
    assert_eq!(
        restored_latest(&r.repo, r.scratch.path(), "latest.sqlite").await,
        contents(db.connection()).await,
        "the large transaction and the ones after it: {status:?}"
    );
}

crate::support::test_on_repositories!(sqlite; a_transaction_larger_than_a_segment_is_shipped);
