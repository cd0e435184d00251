//! Issue 16, item 4: hotel-server processes started at the same moment on a fresh PostgreSQL
//! database all start (reading the migration status before taking the migration lock made
//! 14 of 32 starts exit with `duplicate key value violates unique constraint
//! "pg_type_typname_nsp_index"`).

use db_connect::testing::TestDatabase;
use migration::{Migrator, MigratorTrait};

use crate::support::process::{ServerProcess, Started};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_started_together_on_a_fresh_database_all_start() {
    for trial in 0..2 {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        let mut servers: Vec<ServerProcess> = (0..4)
            .map(|_| ServerProcess::spawn(db.url(), &[]))
            .collect();
        let client = reqwest::Client::new();
        for (i, server) in servers.iter_mut().enumerate() {
            match server.wait_listening() {
                Started::Listening => {}
                Started::Exited(why) => panic!("trial {trial}: server {i} did not start: {why}"),
            }
            let health = client
                .get(format!("{}/healthz", server.base()))
                .send()
                .await
                .unwrap();
            assert_eq!(health.status(), reqwest::StatusCode::OK);
        }
        let applied = Migrator::get_applied_migrations(db.connection())
            .await
            .unwrap();
        assert_eq!(applied.len(), Migrator::migrations().len());
        let logged: usize = servers
            .iter()
            .map(|s| s.log_text().matches("migrations applied").count())
            .sum();
        assert_eq!(
            logged, 1,
            "one server migrated, the others found nothing pending"
        );
    }
}
