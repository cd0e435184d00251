//! The PostgreSQL server killed with `SIGKILL` in the middle of a booking storm against a real
//! hotel-server, and restarted (crash recovery) on the same port; or paused with `SIGSTOP` (a
//! hung server: connections open, nothing answered) for longer than the request timeout, then
//! resumed. While it is gone, requests may fail only with 503 and `Retry-After`; afterwards the
//! server serves again without a restart of its own, and the audit finds nothing lost, nothing
//! counted twice.

use std::time::Duration;

use db_connect::testing::PostgresCluster;

use crate::support::{
    audit::audit,
    process::ServerProcess,
    storm::{Storm, seed_hotel},
};

/// A storm of 150 bookings by 6 clients (seed `seed`) through one hotel-server on a PostgreSQL
/// cluster of the test's own; once 40 are answered, `fault` does its worst to the cluster.
/// Afterwards: the fault hit the storm (not everything was answered when it ended), the storm
/// still booked, the audit finds nothing lost or doubled, and no answer was a 5xx other than
/// 503 with `Retry-After`.
async fn storm_through<F, Fut>(seed: u64, fault: F)
where
    F: FnOnce(PostgresCluster) -> Fut,
    Fut: std::future::Future<Output = PostgresCluster>,
{
    let Some(cluster) = PostgresCluster::start() else {
        return;
    };
    let url = cluster.create_database("hotel").await;
    let hotel = seed_hotel(&url, 3).await;
    let mut server = ServerProcess::spawn(&url, &[]);
    tokio::task::block_in_place(|| server.expect_listening());
    let storm = Storm::start(vec![server.base()], &hotel, 6, 150, seed);
    storm.wait_answered(40).await;
    let _cluster = fault(cluster).await;
    // The storm outlived the fault, so requests were in flight while the database was gone
    // (they wait for a connection and are answered once it is back, or 503 past the wait).
    let answered_by_the_end = storm.answered();
    assert!(
        answered_by_the_end < 150,
        "the fault hit the storm: all 150 answered before it ended"
    );
    let ledger = storm.finish().await;
    eprintln!("statuses: {:?}", ledger.statuses);
    let findings = audit(&url, &ledger).await;
    findings.assert_consistent(&ledger);
    assert!(
        ledger.statuses.get(&201).copied().unwrap_or(0) >= 100,
        "the storm booked: {:?}",
        ledger.statuses
    );
    // While PostgreSQL is gone the server answers 503 with Retry-After (or holds the request
    // until a connection is back), and afterwards the pool replaces the dead connections
    // instead of failing requests with 500 (issue 16 item 1).
    findings.assert_no_server_errors(&ledger);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_mid_storm() {
    storm_through(11, |mut cluster| async move {
        tokio::task::block_in_place(|| cluster.kill());
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| cluster.restart());
        cluster
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_paused_longer_than_the_request_timeout_mid_storm() {
    storm_through(12, |cluster| async move {
        cluster.pause();
        // Past the server's 10 s request timeout: requests (and transactions, some in COMMIT)
        // are held by a server that answers nothing, and answered 503 meanwhile.
        tokio::time::sleep(Duration::from_secs(12)).await;
        cluster.resume();
        cluster
    })
    .await;
}
