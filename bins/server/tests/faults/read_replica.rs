//! Issue 16, the read replica: a real streaming standby (pg_basebackup -R from the test's own
//! PostgreSQL) behind `--read-replica-url`, paused, killed and restarted. Reports read the
//! standby only once it has replayed every write that returned before them, so a report right
//! after a booking always counts it, whatever the standby does; while the standby lags or is
//! down, reports read the primary, /healthz stays 200, and the lag and the routing are
//! metrics.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use db_connect::testing::PostgresCluster;
use migration::{Migrator, MigratorTrait};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    hotel::{Hotel, audit, day, seed},
    process::ServerProcess,
};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// What the test drives: the server, its admin's token, and the bookings acknowledged so far.
struct Scenario {
    client: Client,
    server: ServerProcess,
    hotel: Hotel,
    admin: String,
    acknowledged: BTreeSet<i64>,
}

impl Scenario {
    /// Books one room for one night (a different night each time, so nothing sells out) and
    /// returns the booking's id.
    async fn book(&mut self) -> i64 {
        let from = i64::try_from(self.acknowledged.len() % 50).unwrap() + 1;
        let response = self
            .client
            .post(format!("{}/api/bookings", self.server.base()))
            .bearer_auth(&self.hotel.guest)
            .json(&json!({
                "roomTypeId": self.hotel.room_types[0],
                "startDate": day(from),
                "endDate": day(from + 1),
                "rooms": 1,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let id = body["id"].as_i64().unwrap();
        self.acknowledged.insert(id);
        id
    }

    /// The statistics report over every night booked: its booking count.
    async fn reported_bookings(&self) -> i64 {
        let response = self
            .client
            .get(format!(
                "{}/api/admin/reports/statistics?startDate={}&endDate={}",
                self.server.base(),
                day(0),
                day(60)
            ))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["totalBookings"].as_i64().unwrap()
    }

    /// Books, then reads the report at once, `rounds` times: the report must count every
    /// booking each time.
    async fn book_then_report(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.book().await;
            let expected = i64::try_from(self.acknowledged.len()).unwrap();
            assert_eq!(
                self.reported_bookings().await,
                expected,
                "a report right after a booking misses it"
            );
        }
    }

    async fn health(&self) -> Value {
        let response = self
            .client
            .get(format!("{}/healthz", self.server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the replica's state never makes the server unhealthy"
        );
        response.json().await.unwrap()
    }

    /// The value of the metric sample whose line starts with `series` (name and labels).
    async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.server.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    async fn reads(&self, target: &str, reason: &str) -> f64 {
        self.metric(&format!(
            "hotel_replica_reads_total{{target=\"{target}\",reason=\"{reason}\"}}"
        ))
        .await
        .unwrap_or(0.0)
    }

    /// Waits until the standby has caught up, then checks that reports read it again.
    async fn expect_reports_back_on_the_standby(&mut self) {
        self.wait_for_metric("hotel_replica_lag_seconds", |lag| lag < 1.0)
            .await;
        let before = self.reads("replica", "fresh").await;
        self.book_then_report(5).await;
        assert!(
            self.reads("replica", "fresh").await > before,
            "a standby that caught up answers reports again"
        );
    }

    /// Waits until the metric `series` satisfies `ok`.
    async fn wait_for_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.metric(series).await;
            if let Some(value) = value.filter(|v| ok(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {value:?}\n{}",
                self.server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_never_read_the_past_while_the_standby_lags_or_dies() {
    let Some(primary) = PostgresCluster::start() else {
        return;
    };
    let url = primary.create_database("hotel").await;
    let db = db_connect::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let hotel = seed(&db, 100).await;
    let admin = server::tokens::issue(
        &db,
        "admin@example.com",
        Some(entity::UserRole::Admin),
        None,
    )
    .await
    .unwrap()
    .token;
    db.close().await.unwrap();
    let mut standby = tokio::task::block_in_place(|| primary.standby());
    let mut server = ServerProcess::spawn(&url, &[("READ_REPLICA_URL", &standby.url("hotel"))]);
    tokio::task::block_in_place(|| server.expect_listening());
    let mut scenario = Scenario {
        client: client(),
        server,
        hotel,
        admin,
        acknowledged: BTreeSet::new(),
    };

    // A healthy standby answers the reports, and each report counts the booking made just
    // before it (the report waits, briefly, for the standby to replay it).
    scenario
        .wait_for_metric("hotel_replica_up", |up| up == 1.0)
        .await;
    assert_eq!(scenario.health().await["replica"], "ok");
    scenario.book_then_report(15).await;
    let on_replica = scenario.reads("replica", "fresh").await;
    assert!(
        on_replica >= 10.0,
        "the standby answered the reports: {on_replica} of 15"
    );

    // Replay paused: the standby falls behind. Reports read the primary (and still count
    // every booking), and the lag grows in the metrics and /healthz.
    standby.pause_replay(true).await;
    scenario.book_then_report(5).await;
    let lag = scenario
        .wait_for_metric("hotel_replica_lag_seconds", |lag| lag >= 2.0)
        .await;
    let health = scenario.health().await;
    assert!(
        health["replicaLagSeconds"].as_f64().unwrap() >= lag - 0.5,
        "/healthz shows the lag: {health}"
    );
    let before = scenario.reads("primary", "lagging").await;
    scenario.book_then_report(5).await;
    assert!(
        scenario.reads("primary", "lagging").await >= before + 5.0,
        "a lagging standby sends reports to the primary"
    );

    // Replay resumed: the standby catches up and answers again.
    standby.pause_replay(false).await;
    scenario.expect_reports_back_on_the_standby().await;

    // Standby killed: reports read the primary, the server stays healthy, the replica is down.
    tokio::task::block_in_place(|| standby.kill());
    scenario.book_then_report(5).await;
    let health = scenario.health().await;
    assert_ne!(health["replica"], "ok", "{health}");
    scenario
        .wait_for_metric("hotel_replica_up", |up| up == 0.0)
        .await;
    assert!(scenario.reads("primary", "unavailable").await >= 1.0);

    // Standby back (crash recovery, then streaming again): reports return to it.
    tokio::task::block_in_place(|| standby.restart());
    scenario
        .wait_for_metric("hotel_replica_up", |up| up == 1.0)
        .await;
    scenario.expect_reports_back_on_the_standby().await;

    audit(&url, &scenario.acknowledged).await;
}
