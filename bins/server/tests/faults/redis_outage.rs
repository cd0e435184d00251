//! The shared Redis tier stopped (`SIGKILL`), restarted empty, then paused (`SIGSTOP`) and
//! resumed, under a booking storm spread over two hotel-server instances: the cache is an
//! optimisation, so no request may fail because of it, and the audit finds nothing lost.

use std::time::Duration;

use db_connect::testing::{RedisServer, TestDatabase};

use crate::support::{
    audit::audit,
    process::ServerProcess,
    storm::{Storm, seed_hotel},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_paused_under_load_with_two_instances() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let Some(test_db) = TestDatabase::postgres().await else {
        return;
    };
    let hotel = seed_hotel(test_db.url(), 3).await;
    let redis_url = redis.url();
    let env = [
        ("REDIS_URL", redis_url.as_str()),
        ("REDIS_PREFIX", "faults"),
    ];
    let mut servers = [
        ServerProcess::spawn(test_db.url(), &env),
        ServerProcess::spawn(test_db.url(), &env),
    ];
    for server in &mut servers {
        tokio::task::block_in_place(|| server.expect_listening());
    }
    let storm = Storm::start(
        servers.iter().map(ServerProcess::base).collect(),
        &hotel,
        6,
        150,
        23,
    );
    storm.wait_answered(30).await;
    redis.stop();
    storm.wait_answered(60).await;
    tokio::task::block_in_place(|| redis.restart());
    storm.wait_answered(90).await;
    redis.pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.resume();
    let ledger = storm.finish().await;
    eprintln!("statuses: {:?}", ledger.statuses);
    let findings = audit(test_db.url(), &ledger).await;
    findings.assert_clean(&ledger);
    assert!(
        ledger.statuses.get(&201).copied().unwrap_or(0) >= 100,
        "the storm booked: {:?}",
        ledger.statuses
    );
}
