//! Issue 16, item 4: hotel-server processes started at the same moment on a fresh database all
//! start. On PostgreSQL, reading the migration status before taking the migration lock made 14
//! of 32 starts exit with `duplicate key value violates unique constraint
//! "pg_type_typname_nsp_index"`; on SQLite, which had no migration lock across processes, 3 of
//! 4 servers exited with `table "users" already exists`.

use db_connect::{test_on_backends, testing::TestDatabase};
use migration::{Migrator, MigratorTrait};

use crate::support::process::{ServerProcess, Started};

async fn servers_started_together_on_a_fresh_database_all_start(first: TestDatabase) {
    let backend = first.backend();
    let mut next = Some(first);
    for trial in 0..2 {
        let db = match next.take() {
            Some(db) => db,
            None => match backend {
                db_connect::Backend::Sqlite => TestDatabase::sqlite().await,
                db_connect::Backend::Postgres => TestDatabase::postgres()
                    .await
                    .expect("PostgreSQL answered for the first trial"),
            },
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

test_on_backends!(multi_thread; servers_started_together_on_a_fresh_database_all_start);
