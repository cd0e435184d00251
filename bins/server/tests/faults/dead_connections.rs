//! Issue 16, item 1: dead pooled database connections. Before the fix, after
//! `pg_terminate_backend` of the pool's idle connections the next ~10 requests failed (503 on
//! /healthz, 500 elsewhere), and under load 8 rounds of killed backends gave 40 of 300 bookings
//! a 500. A request may fail only while the database really is unreachable, and then with 503
//! and `Retry-After`.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use db_connect::testing::{PostgresCluster, TestDatabase};
use migration::Migrator;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    hotel::{Hotel, audit, day, seed},
    process::{ServerProcess, Started},
};

/// A hotel-server process on a database of `cluster`, seeded with `rooms` rooms a night.
async fn hotel_on(cluster: &PostgresCluster, rooms: i32) -> (TestDatabase, Hotel, ServerProcess) {
    let db = TestDatabase::on_cluster(cluster)
        .await
        .migrated::<Migrator>()
        .await;
    let hotel = seed(db.connection(), rooms).await;
    let mut server = ServerProcess::spawn(db.url(), &[]);
    match server.wait_listening() {
        Started::Listening => {}
        Started::Exited(why) => panic!("hotel-server did not start: {why}"),
    }
    (db, hotel, server)
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn book(
    client: &Client,
    server: &ServerProcess,
    token: &str,
    room_type: i64,
    from: i64,
    nights: i64,
) -> reqwest::Response {
    client
        .post(format!("{}/api/bookings", server.base()))
        .bearer_auth(token)
        .json(&json!({"roomTypeId": room_type, "startDate": day(from), "endDate": day(from + nights), "rooms": 1}))
        .send()
        .await
        .unwrap()
}

/// Busy enough that the server's pool opens several connections.
async fn warm(client: &Client, server: &ServerProcess, hotel: &Hotel) {
    let requests = (0..24).map(|i| {
        let url = if i % 2 == 0 {
            format!("{}/healthz", server.base())
        } else {
            format!("{}/api/me/bookings?includePayments=true", server.base())
        };
        client.get(url).bearer_auth(&hotel.guest).send()
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_terminated_backends_do_not_fail() {
    let Some(cluster) = PostgresCluster::start() else {
        return;
    };
    let (db, hotel, server) = hotel_on(&cluster, 50).await;
    let client = client();
    let mut acknowledged = BTreeSet::new();
    for round in 0..4 {
        warm(&client, &server, &hotel).await;
        let terminated = cluster.terminate_backends(db.name()).await;
        assert!(
            terminated > 0,
            "round {round}: the server holds connections"
        );
        let mut statuses = Vec::new();
        for i in 0..10 {
            let status = match i % 3 {
                0 => client
                    .get(format!("{}/healthz", server.base()))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                1 => {
                    let response =
                        book(&client, &server, &hotel.guest, hotel.room_types[0], i, 2).await;
                    let status = response.status();
                    if status == StatusCode::CREATED {
                        let body: Value = response.json().await.unwrap();
                        acknowledged.insert(body["id"].as_i64().unwrap());
                    }
                    status
                }
                _ => client
                    .get(format!("{}/api/me/bookings", server.base()))
                    .bearer_auth(&hotel.guest)
                    .send()
                    .await
                    .unwrap()
                    .status(),
            };
            statuses.push(status);
        }
        assert!(
            statuses.iter().all(StatusCode::is_success),
            "round {round}, {terminated} backends terminated: {statuses:?}\n{}",
            server.log_text()
        );
    }
    audit(db.url(), &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_under_load_survive_rounds_of_terminated_backends() {
    let Some(cluster) = PostgresCluster::start() else {
        return;
    };
    // Declared before the database, so dropped after it.
    let cluster = Arc::new(cluster);
    let (db, hotel, server) = hotel_on(&cluster, 40).await;
    let (server, hotel) = (Arc::new(server), Arc::new(hotel));
    let client = client();
    warm(&client, &server, &hotel).await;
    let rounds_done = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6_u64)
        .map(|worker| {
            let (client, server, hotel) = (client.clone(), Arc::clone(&server), Arc::clone(&hotel));
            let (rounds_done, made) = (Arc::clone(&rounds_done), Arc::clone(&made));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut seed = worker * 7919 + 1;
                // Until every round of terminations is over and 300 bookings were asked for.
                while !(rounds_done.load(Ordering::Relaxed) && made.load(Ordering::Relaxed) >= 300)
                {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let room_type = hotel.room_types[(seed >> 33) as usize % 2];
                    let from = (seed >> 40) as i64 % 55;
                    let nights = 1 + (seed >> 20) as i64 % 3;
                    let response =
                        book(&client, &server, &hotel.guest, room_type, from, nights).await;
                    let status = response.status();
                    let id = if status == StatusCode::CREATED {
                        let body: Value = response.json().await.unwrap();
                        body["id"].as_i64()
                    } else {
                        None
                    };
                    made.fetch_add(1, Ordering::Relaxed);
                    outcomes.push((status, id));
                }
                outcomes
            })
        })
        .collect();
    let mut terminated = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        terminated.push(cluster.terminate_backends(db.name()).await);
    }
    rounds_done.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    let mut acknowledged = BTreeSet::new();
    for worker in workers {
        for (status, id) in worker.await.unwrap() {
            statuses.push(status);
            acknowledged.extend(id);
        }
    }
    eprintln!(
        "{} bookings, {} created, backends terminated per round: {terminated:?}",
        statuses.len(),
        acknowledged.len()
    );
    assert!(
        terminated.iter().filter(|n| **n > 0).count() >= 6,
        "the rounds found backends to terminate: {terminated:?}"
    );
    let failed: Vec<_> = statuses
        .iter()
        .filter(|s| **s != StatusCode::CREATED && **s != StatusCode::CONFLICT)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} bookings failed: {failed:?}\n{}",
        failed.len(),
        statuses.len(),
        server.log_text()
    );
    audit(db.url(), &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_503_with_retry_after_and_recovery_is_seamless() {
    let Some(mut cluster) = PostgresCluster::start() else {
        return;
    };
    let (db, hotel, server) = hotel_on(&cluster, 10).await;
    let client = client();
    warm(&client, &server, &hotel).await;
    let mut acknowledged = BTreeSet::new();
    let response = book(&client, &server, &hotel.guest, hotel.room_types[1], 1, 2).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    acknowledged.insert(body["id"].as_i64().unwrap());

    // A crash: every process of the server dies at once.
    cluster.kill();
    let health = client.get(format!("{}/healthz", server.base())).send();
    let mine = client
        .get(format!("{}/api/me/bookings", server.base()))
        .bearer_auth(&hotel.guest)
        .send();
    let booking = book(&client, &server, &hotel.guest, hotel.room_types[0], 3, 1);
    let (health, mine, booking) = tokio::join!(health, mine, booking);
    let health = health.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        health.headers().contains_key("retry-after"),
        "/healthz's 503 says when to ask again, as every 503 does"
    );
    for response in [mine.unwrap(), booking] {
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable");
        assert!(retry_after.is_some(), "503 says when to retry");
    }

    // Back after crash recovery: the first requests succeed, without errors in between.
    cluster.restart();
    let started = Instant::now();
    loop {
        let status = client
            .get(format!("{}/healthz", server.base()))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/healthz still {status} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for from in 0..5 {
        let response = book(&client, &server, &hotel.guest, hotel.room_types[0], from, 1).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        acknowledged.insert(body["id"].as_i64().unwrap());
        let mine = client
            .get(format!("{}/api/me/bookings", server.base()))
            .bearer_auth(&hotel.guest)
            .send()
            .await
            .unwrap();
        assert_eq!(mine.status(), StatusCode::OK);
    }
    audit(db.url(), &acknowledged).await;
}
