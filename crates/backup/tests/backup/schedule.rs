//! The scheduler's loop (paused time) and one real scheduled run and pre-migration gate per
//! backend.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use backup::{Reason, RetentionPolicy, schedule::run_every};
use db_connect::testing::TestDatabase;
use tokio::{sync::oneshot, time::Instant};

use crate::support::{TestRepo, seeded, source, test_on_repositories, verify_options};

#[tokio::test(start_paused = true)]
async fn runs_happen_every_interval_until_stopped() {
    let started = Instant::now();
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    let runs = run_every(
        Duration::from_secs(3600),
        tokio::time::sleep(Duration::from_secs(5 * 3600 + 60)),
        move |_| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push(started.elapsed().as_secs()) }
        },
    )
    .await;
    assert_eq!(runs, 6);
    assert_eq!(*times.lock().unwrap(), [0, 3600, 7200, 10800, 14400, 18000]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_run_lets_the_run_finish() {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let finished = Arc::new(AtomicU64::new(0));
    let done = finished.clone();
    let mut stop_tx = Some(stop_tx);
    let runs = run_every(
        Duration::from_secs(60),
        async {
            let _ = stop_rx.await;
        },
        move |n| {
            // The second run asks to stop half way through its 30 s of work.
            let stop = if n == 2 { stop_tx.take() } else { None };
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(15)).await;
                if let Some(stop) = stop {
                    stop.send(()).unwrap();
                }
                tokio::time::sleep(Duration::from_secs(15)).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        },
    )
    .await;
    assert_eq!(runs, 2, "no run starts after the stop");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "the run in progress finished"
    );
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_run_delays_the_next_instead_of_bursting() {
    let started = Instant::now();
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    run_every(
        Duration::from_secs(60),
        tokio::time::sleep(Duration::from_secs(400)),
        move |n| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(started.elapsed().as_secs());
                if n == 1 {
                    // Three intervals' worth of work.
                    tokio::time::sleep(Duration::from_secs(190)).await;
                }
            }
        },
    )
    .await;
    assert_eq!(*times.lock().unwrap(), [0, 190, 250, 310, 370]);
}

async fn a_scheduled_run_creates_verifies_and_prunes(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let policy = RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        pre_migration_newer: 1,
    };
    let first = repo
        .run_scheduled(&source(&db), &verify_options(&db), &policy, &|_| {})
        .await
        .unwrap();
    assert!(first.verification.ok);
    assert_eq!(first.created.reason, Reason::Scheduled);
    let second = repo
        .run_scheduled(&source(&db), &verify_options(&db), &policy, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        second.prune.deleted,
        std::slice::from_ref(&first.created.id)
    );
    // The pruned backup is gone with its data and its verification records.
    let left: Vec<String> = r
        .keys()
        .into_iter()
        .filter(|k| {
            let id = first.created.id.as_str();
            k.starts_with(&format!("{id}.")) || k.contains(&format!("/{id}/"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert!(listing.backups[0].is_verified());
    let runs = repo.last_runs().await.unwrap();
    assert_eq!(runs.runs.len(), 3, "create, verify and prune are recorded");
    assert!(runs.failures().is_empty());
}

async fn the_pre_migration_gate_leaves_a_verified_backup(db: TestDatabase, r: TestRepo) {
    let db = seeded(db).await;
    let repo = &r.repo;
    let report = repo
        .pre_migration(&source(&db), &verify_options(&db), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.manifest.reason, Reason::PreMigration);
    assert!(
        report.manifest.is_verified(),
        "the manifest records the verification"
    );
    assert!(report.verification.ok);
    assert_eq!(
        report.manifest.migration_version.as_deref(),
        Some(crate::support::latest_migration().as_str())
    );
}

test_on_repositories!(
    a_scheduled_run_creates_verifies_and_prunes,
    the_pre_migration_gate_leaves_a_verified_backup
);
