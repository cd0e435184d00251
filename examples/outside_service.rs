//! A service outside this workspace's hotel domain, using its libraries on its own schema:
//! axum and sea-orm on SQLite, reads cached by `query-cache`, every request scoped by
//! `perf-stats` (statement counts and N+1 detection per route, in one layer), and a verified
//! backup by `backup`. The README's "Using the libraries in your own service" shows its core.
//!
//! `cargo run -p examples --example outside_service`: builds the service, answers two
//! requests (the second from the cache), takes and verifies a backup, prints the query report.
//! `cargo test -p examples --example outside_service` runs the same, and checks that the
//! README shows this file's snippet.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use axum::{
    Json, Router,
    extract::{MatchedPath, Path, Request, State},
    http::StatusCode,
    routing::get,
};
use backup::{BackupRepository, Reason, Source, VerifyOptions};
// perf-stats re-exports the sea-orm its API takes: one version for the whole service.
use perf_stats::sea_orm::{self, ConnectionTrait, DatabaseConnection, Statement};
use perf_stats::{QueryScopeLayer, QueryTracker, SortKey};
use query_cache::{Cacheable, QueryCache, Ttl};
use tower::ServiceExt;

/// The service's own schema, with a first note.
const SCHEMA: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
    INSERT INTO notes (id, text) VALUES (1, 'hello from an outside service')";

/// The service's own read model.
#[derive(Debug, Clone, serde::Serialize)]
struct Note {
    id: i64,
    text: String,
}

impl Cacheable for Note {}

#[derive(Clone)]
struct App {
    db: DatabaseConnection,
    cache: QueryCache,
}

/// `GET /notes/{id}`: read through the cache.
async fn note(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Note>, StatusCode> {
    let db = app.db.clone();
    let load = move || async move {
        let sql = "SELECT text FROM notes WHERE id = ?";
        let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [id.into()]);
        let row = db.query_one_raw(statement).await?;
        let row = row.ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("note {id}")))?;
        Ok::<_, sea_orm::DbErr>(Note {
            id,
            text: row.try_get("", "text")?,
        })
    };
    let cached = app
        .cache
        .with_cache(format!("note:{id}"), Ttl::SHORT, &["notes"], load)
        .await;
    let note = cached.map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(Json(Note::clone(&note)))
}

/// A request's perf-stats scope: method and route pattern (never the raw path).
fn route(request: &Request) -> String {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    format!("{} {path}", request.method())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run().await
}

/// The whole example (`cargo test -p examples --example outside_service` runs it too).
async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("notes.sqlite").display()
    );

    // --- the README's snippet starts here ---
    let tracker = QueryTracker::new();
    let mut db = sea_orm::Database::connect(&url).await?;
    tracker.attach(&mut db); // every statement timed, by query shape
    db.execute_unprepared(SCHEMA).await?; // the service's own tables
    let cache = QueryCache::builder().max_entries(10_000).build()?;
    let state = App {
        db: db.clone(),
        cache,
    };
    let app = Router::new()
        .route("/notes/{id}", get(note))
        .layer(QueryScopeLayer::new(tracker.clone(), route)) // N+1 detection per route
        .with_state(state);
    // A backup of the service's own database (schema and data).
    let repo = BackupRepository::open(dir.path().join("backups"))?;
    let source = Source::from_url(&url)?;
    let manifest = repo.create(&source, Reason::Manual, &|_| {}).await?;
    // --- the README's snippet ends here ---

    for _ in 0..2 {
        let request = Request::get("/notes/1").body(axum::body::Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let report = tracker.report();
    let select = report
        .top(SortKey::Calls, 10)
        .into_iter()
        .find(|q| q.fingerprint.starts_with("SELECT text FROM notes"))
        .expect("the note's query was recorded");
    // Two requests, one query: the second was a cache hit.
    assert_eq!(select.calls, 1);
    println!("{report}");

    let verified = repo
        .verify(&manifest.id, &VerifyOptions::default(), &|_| {})
        .await?;
    println!("backup {} verified: {}", manifest.id, verified.ok);
    assert!(verified.ok);
    assert_eq!(manifest.tables["notes"], 1);
    db.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_service_answers_from_the_cache_and_its_backup_verifies() {
        super::run().await.unwrap();
    }

    /// The README's library-user snippet is the marked part of this file, line for line, so
    /// the README shows code that compiles.
    #[test]
    fn the_readme_shows_this_snippet() {
        let readme = include_str!("../README.md");
        let example = include_str!("outside_service.rs");
        let marked: Vec<&str> = example
            .lines()
            .skip_while(|l| !l.contains("the README's snippet starts here"))
            .skip(1)
            .take_while(|l| !l.contains("the README's snippet ends here"))
            .map(str::trim)
            .collect();
        assert!(marked.len() >= 10, "markers not found: {marked:?}");
        let section = readme
            .split("## Using the libraries in your own service")
            .nth(1)
            .expect("the README has the section");
        let snippet: Vec<&str> = section
            .split("```rust")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the section has a rust block")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(snippet, marked);
    }
}
