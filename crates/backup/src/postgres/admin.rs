//! Work on whole databases through the server's maintenance database: create, drop, rename,
//! list and end sessions.

use sea_orm::sqlx::{self, postgres::PgConnection};

use super::{PgTools, PgUrl, quote};
use crate::{Error, Result};

/// How long sessions found on a database may take to go away before it counts as in use.
const SESSION_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection to the server's maintenance database, for work on whole databases.
pub(crate) struct Admin {
    conn: PgConnection,
    server: String,
}

impl Admin {
    /// Connects to the maintenance database of `db`'s server with `db`'s credentials.
    pub(crate) async fn connect(db: &PgUrl, tools: &PgTools) -> Result<Self> {
        let admin = db.with_database(&tools.maintenance_database);
        Ok(Self {
            conn: admin.connect().await?,
            server: admin.public(),
        })
    }

    fn err(&self, what: &str) -> impl FnOnce(sqlx::Error) -> Error + use<> {
        let context = format!("{what} on {}", self.server);
        move |e| Error::db(context, e)
    }

    pub(crate) async fn exists(&mut self, name: &str) -> Result<bool> {
        let err = self.err("looking up a database");
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut self.conn)
            .await
            .map_err(err)
    }

    /// The other client sessions connected to `name`, described. Background workers such as
    /// autovacuum are not sessions (PostgreSQL stops them itself when the database is renamed
    /// or dropped). A client that has just disconnected stays listed until its server process
    /// has exited, a few milliseconds later, so sessions are only reported if they are still
    /// there after [`SESSION_GRACE`].
    pub(crate) async fn sessions(&mut self, name: &str) -> Result<Vec<String>> {
        let deadline = std::time::Instant::now() + SESSION_GRACE;
        loop {
            let sessions = self.client_sessions(name).await?;
            if sessions.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(sessions);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn client_sessions(&mut self, name: &str) -> Result<Vec<String>> {
        let err = self.err("listing sessions");
        sqlx::query_scalar(
            "SELECT format('pid %s (%s%s)', pid, coalesce(nullif(application_name, ''), 'unnamed'), \
                    coalesce(' from ' || client_addr::text, '')) \
             FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             ORDER BY pid",
        )
        .bind(name)
        .fetch_all(&mut self.conn)
        .await
        .map_err(err)
    }

    /// Refuses new connections to `name` and ends the existing ones.
    pub(crate) async fn disconnect_everyone(&mut self, name: &str) -> Result<()> {
        let err = self.err("refusing connections");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            quote(name)
        )))
        .execute(&mut self.conn)
        .await
        .map_err(err)?;
        let err = self.err("ending sessions");
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }

    pub(crate) async fn create(&mut self, name: &str) -> Result<()> {
        let err = self.err("creating a database");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote(name)
        )))
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(err)
    }

    /// Drops `name`, ending its sessions. Failures are logged: this is cleanup.
    pub(crate) async fn drop_quietly(&mut self, name: &str) {
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(name)
        )))
        .execute(&mut self.conn)
        .await;
        if let Err(e) = dropped {
            tracing::warn!(database = name, error = %e, "cannot drop a scratch database; drop it by hand");
        }
    }

    pub(crate) async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let err = self.err("renaming a database");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote(from),
            quote(to)
        )))
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(err)
    }

    pub(crate) async fn close(self) {
        let _ = sqlx::Connection::close(self.conn).await;
    }
}
