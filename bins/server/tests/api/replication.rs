//! `hotel-server --replicate-to` killed with SIGKILL in the middle of a booking storm: every
//! booking acknowledged (201) more than one replication interval (1 s, the default the server
//! runs with) before the kill is in the restore of `--latest`.

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use backup::{
    BackupRepository, RestoreOptions, Source,
    replicate::{ReplicatorOptions, RestorePoint},
};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};

use crate::{
    harness::day,
    server_process::{BIN, ServerProcess},
};

/// A booking the server acknowledged, and when the test received the 201.
struct Acknowledged {
    id: i64,
    at: Instant,
}

/// Guests booking as fast as the server answers, on 8 connections, spread over the room types
/// and dates so most requests find a room. Runs until `stop`.
fn storm(
    address: String,
    token: String,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..8i64)
        .map(|k| {
            let (address, token, stop, acknowledged) = (
                address.clone(),
                token.clone(),
                stop.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let from = (i * 13 + k * 31) % 300 + 1;
                    let body = serde_json::json!({
                        "roomTypeId": (k * 7 + i) % 20 + 1,
                        "startDate": day(from),
                        "endDate": day(from + 1 + i % 3),
                        "rooms": 1,
                    });
                    let Ok(response) = client
                        .post(format!("http://{address}/api/bookings"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        continue; // killed: the connection fails
                    };
                    if response.status() != StatusCode::CREATED {
                        continue;
                    }
                    let at = Instant::now();
                    let Ok(created) = response.json::<serde_json::Value>().await else {
                        continue;
                    };
                    let id = created["id"].as_i64().unwrap();
                    acknowledged.lock().unwrap().push(Acknowledged { id, at });
                }
            })
        })
        .collect()
}

async fn killed_mid_storm_loses_nothing_acknowledged_before_the_interval(
    repository: String,
    repo: BackupRepository,
    env: &[(&str, &str)],
) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["--demo", "--replicate-to", &repository])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/hotel.sqlite", dir.path().display()),
        )
        .env("BACKUP_DIR", dir.path().join("backups"));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut server = ServerProcess::start(command);
    server.wait_for_stdout("GUEST_TOKEN=");
    let token = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("GUEST_TOKEN="))
        .unwrap()
        .to_owned();
    let interval = ReplicatorOptions::default().interval;
    // The promise starts once the line is established: its base snapshot and first segment
    // are in the repository (a heartbeat follows the snapshot at once).
    let deadline = Instant::now() + Duration::from_secs(120);
    while repo
        .restorable_windows()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "replication never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let tasks = storm(
        server.address.to_string(),
        token,
        stop.clone(),
        acknowledged.clone(),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let killed_at = Instant::now();
    drop(server); // SIGKILL, then reaped
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    let promised: Vec<i64> = acknowledged
        .iter()
        .filter(|a| killed_at.duration_since(a.at) > interval)
        .map(|a| a.id)
        .collect();
    assert!(
        promised.len() > 20,
        "the storm booked: {} acknowledged, {} more than {interval:?} before the kill",
        acknowledged.len(),
        promised.len()
    );

    let target = dir.path().join("restored.sqlite");
    let report = repo
        .restore_to_point(
            RestorePoint::Latest,
            None,
            &Source::sqlite(&target),
            &RestoreOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(report.replayed.unwrap().transactions > 0);
    let restored = db_connect::connect(&format!("sqlite://{}", target.display()))
        .await
        .unwrap();
    let present: std::collections::HashSet<i64> = restored
        .query_all_raw(Statement::from_string(
            restored.get_database_backend(),
            "SELECT id FROM bookings",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0).unwrap())
        .collect();
    restored.close().await.unwrap();
    let lost: Vec<i64> = promised
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    let first = acknowledged.iter().map(|a| a.id).min().unwrap_or_default();
    assert!(
        lost.is_empty(),
        "bookings acknowledged more than {interval:?} before the kill are missing: {lost:?} \
         (the storm's first booking: {first}; the restore holds {} bookings, the newest {:?})",
        present.len(),
        present.iter().max()
    );
    let recent = acknowledged.len() - promised.len();
    let recent_kept = acknowledged
        .iter()
        .filter(|a| killed_at.duration_since(a.at) <= interval && present.contains(&a.id))
        .count();
    eprintln!(
        "{} bookings acknowledged, {} more than {interval:?} before the kill (all restored); \
         of the last {interval:?}'s {recent}, {recent_kept} restored",
        acknowledged.len(),
        promised.len()
    );
}

mod killed_mid_storm_loses_nothing_acknowledged_before_the_interval {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        let repository = tempfile::tempdir().unwrap();
        let repo = backup::BackupRepository::open(repository.path()).unwrap();
        super::killed_mid_storm_loses_nothing_acknowledged_before_the_interval(
            repository.path().display().to_string(),
            repo,
            &[],
        )
        .await;
    }

    #[cfg(feature = "s3")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3() {
        use db_connect::testing::{MotoServer, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
        let Some(moto) = MotoServer::start() else {
            return;
        };
        let bucket = moto.bucket("server-replication");
        let url = bucket.url("hotel");
        let scratch = tempfile::tempdir().unwrap();
        let repo =
            backup::BackupRepository::builder(backup::RepositoryLocation::parse(&url).unwrap())
                .s3_settings(backup::S3Settings {
                    access_key_id: Some(TEST_ACCESS_KEY_ID.to_owned()),
                    secret_access_key: Some(TEST_SECRET_ACCESS_KEY.to_owned()),
                    ..backup::S3Settings::default()
                })
                .scratch_dir(scratch.path())
                .open()
                .unwrap();
        super::killed_mid_storm_loses_nothing_acknowledged_before_the_interval(
            url.clone(),
            repo,
            &[
                ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY),
            ],
        )
        .await;
    }
}
