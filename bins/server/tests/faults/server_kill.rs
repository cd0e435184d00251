//! A hotel-server killed with `SIGKILL` in the middle of a booking storm, twice, and restarted
//! on the same database: requests in flight die with it (their clients retry under the same
//! key), nothing acknowledged is lost, nothing is counted twice.

use std::time::Duration;

use db_connect::{test_on_backends, testing::TestDatabase};

use crate::support::{
    audit::audit,
    process::ServerProcess,
    storm::{Storm, seed_hotel},
};

async fn server_killed_mid_storm_and_restarted(test_db: TestDatabase) {
    let hotel = seed_hotel(test_db.url(), 3).await;
    let mut server = ServerProcess::spawn(test_db.url(), &[]);
    tokio::task::block_in_place(|| server.expect_listening());
    let storm = Storm::start(vec![server.base()], &hotel, 6, 150, 7);
    for answered in [30, 80] {
        storm.wait_answered(answered).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| server.restart());
    }
    let ledger = storm.finish().await;
    eprintln!("statuses: {:?}", ledger.statuses);
    assert!(
        ledger.statuses.get(&0).copied().unwrap_or(0) > 0,
        "the kills hit the storm: some requests got no answer"
    );
    let findings = audit(test_db.url(), &ledger).await;
    findings.assert_clean(&ledger);
    assert!(
        ledger.statuses.get(&201).copied().unwrap_or(0) >= 100,
        "the storm booked: {:?}",
        ledger.statuses
    );
}

test_on_backends!(multi_thread; server_killed_mid_storm_and_restarted);
