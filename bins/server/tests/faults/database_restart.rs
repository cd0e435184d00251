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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_mid_storm() {
    let Some(mut cluster) = PostgresCluster::start() else {
        return;
    };
    let url = cluster.create_database("hotel").await;
    let hotel = seed_hotel(&url, 3).await;
    let mut server = ServerProcess::spawn(&url, &[]);
    tokio::task::block_in_place(|| server.expect_listening());
    let storm = Storm::start(vec![server.base()], &hotel, 6, 150, 11);
    storm.wait_answered(40).await;
    tokio::task::block_in_place(|| cluster.kill());
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| cluster.restart());
    // The storm outlived the outage, so requests were in flight while the database was gone
    // (they wait for a connection and are answered once it is back, or 503 past the wait).
    let answered_by_restart = storm.answered();
    assert!(
        answered_by_restart < 150,
        "the outage hit the storm: all 150 answered by the restart"
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
    // While PostgreSQL is down the server answers 503 with Retry-After (or holds the request
    // until a connection is back), and after the restart the pool replaces the dead
    // connections instead of failing requests with 500 (issue 16 item 1).
    findings.assert_no_server_errors(&ledger);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_paused_longer_than_the_request_timeout_mid_storm() {
    let Some(cluster) = PostgresCluster::start() else {
        return;
    };
    let url = cluster.create_database("hotel").await;
    let hotel = seed_hotel(&url, 3).await;
    let mut server = ServerProcess::spawn(&url, &[]);
    tokio::task::block_in_place(|| server.expect_listening());
    let storm = Storm::start(vec![server.base()], &hotel, 6, 150, 12);
    storm.wait_answered(40).await;
    cluster.pause();
    // Past the server's 10 s request timeout: requests (and transactions, some in COMMIT) are
    // held by a server that answers nothing, and answered 503 meanwhile.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let answered_while_paused = storm.answered();
    cluster.resume();
    assert!(
        answered_while_paused < 150,
        "the pause hit the storm: all 150 answered before it ended"
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
    findings.assert_no_server_errors(&ledger);
    drop(server);
}
