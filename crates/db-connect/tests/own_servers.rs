//! The fixtures that start servers of the test's own do what fault tests rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use db_connect::testing::{PostgresCluster, RedisServer};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

#[tokio::test]
async fn a_killed_cluster_recovers_what_it_committed_and_its_standby_streams_it() {
    let Some(mut primary) = PostgresCluster::start() else {
        return;
    };
    let url = primary.create_database("fixture").await;
    let db = db_connect::connect(&url).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (n INT); INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    primary.kill();
    assert!(!primary.is_running() && primary.postmaster_pid().is_none());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", primary.port())).is_err(),
        "a killed server accepts nothing"
    );
    primary.restart();
    // The pool's connections died with the server; a new one sees the committed row.
    let fresh = db_connect::connect(&url).await.unwrap();
    assert_eq!(scalar(&fresh, "SELECT COUNT(*) FROM t").await, 1);
    assert!(primary.log().contains("database system was interrupted"));

    let standby = primary.standby();
    let replica = db_connect::connect(&standby.url("fixture")).await.unwrap();
    assert_eq!(
        scalar(&replica, "SELECT pg_is_in_recovery()::int::int8").await,
        1
    );
    standby.pause_replay(true).await;
    fresh
        .execute_unprepared("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        scalar(&replica, "SELECT COUNT(*) FROM t").await,
        1,
        "a paused standby lags"
    );
    standby.pause_replay(false).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while scalar(&replica, "SELECT COUNT(*) FROM t").await != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let other = db_connect::connect(&url).await.unwrap();
    assert_eq!(scalar(&other, "SELECT 1::int8").await, 1);
    assert!(primary.terminate_backends("fixture").await >= 1);
    let data = primary.data_dir();
    drop((db, fresh, other, replica));
    drop(primary);
    assert!(!data.exists(), "the cluster's directory is removed");
}

#[tokio::test]
async fn an_own_redis_pauses_stops_and_restarts_empty() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut connection)
        .unwrap();

    redis.pause();
    connection
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        redis::cmd("GET")
            .arg("k")
            .query::<String>(&mut connection)
            .is_err(),
        "a paused server answers nothing"
    );
    redis.resume();

    redis.restart();
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        redis::cmd("GET")
            .arg("k")
            .query::<Option<String>>(&mut connection)
            .unwrap(),
        None,
        "restarted empty"
    );
    redis.stop();
    assert!(
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .is_err()
    );
}
