//! hotel-stats end to end: the real binary against a real server spawned in this process and
//! real databases, on SQLite and PostgreSQL.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{path::Path, process::Output};

use chrono::{Duration as Days, NaiveDate, Utc};
use dataset::{DatasetOptions, Scale};
use db_connect::{Backend, test_on_backends, testing::TestDatabase};
use migration::{EXPECTED_INDEXES, Migrator};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::Value;
use server::{
    app::HttpLimits,
    startup::{self, Settings},
    tokens,
};
use tokio::{net::TcpListener, process::Command, sync::oneshot, task::JoinHandle};

const BIN: &str = env!("CARGO_BIN_EXE_hotel-stats");

/// Runs hotel-stats with `args` (asynchronously, so a server in this process keeps serving).
async fn hotel_stats(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("HOTEL_ADMIN_TOKEN")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run hotel-stats")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it is not the one expected.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", stdout(out)))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The migrated database filled with the tiny dataset, "today" being today.
async fn tiny(db: TestDatabase) -> TestDatabase {
    let db = db.migrated::<Migrator>().await;
    dataset::generate(
        db.connection(),
        &DatasetOptions::new(Scale::Tiny)
            .seed(3)
            .reference_date(today()),
        &|_| {},
    )
    .await
    .unwrap();
    db
}

/// The real server on port 0 over `db`, with an administrator's and a guest's token.
struct Server {
    url: String,
    admin: String,
    guest: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn spawn(db: &TestDatabase) -> Self {
        let conn = db.connection();
        let admin = tokens::issue(
            conn,
            "ops@hotel.example",
            Some(entity::UserRole::Admin),
            None,
        )
        .await
        .unwrap()
        .token;
        let guest = tokens::issue(conn, "guest@example.com", None, Some("Guest"))
            .await
            .unwrap()
            .token;
        let state = startup::build_state(&Settings {
            cache_max_entries: 1_000,
            ..Settings::new(db.url())
        })
        .await
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel();
        let task = tokio::spawn(startup::serve(
            listener,
            state,
            HttpLimits::default(),
            async {
                let _ = stop.await;
            },
        ));
        Self {
            url,
            admin,
            guest,
            shutdown,
            task,
        }
    }

    /// GETs `path` `times` times and checks every answer is a success.
    async fn traffic(&self, path: &str, times: usize) {
        let client = reqwest::Client::new();
        for _ in 0..times {
            let response = client
                .get(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "GET {path}: {}",
                response.status()
            );
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A local address nothing listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

async fn commands_against_a_running_server(db: TestDatabase) {
    let db = tiny(db).await;
    let server = Server::spawn(&db).await;
    let (url, admin) = (server.url.as_str(), server.admin.as_str());
    let cache_stats = |json: bool, min_lookups: &'static str| {
        let mut args = vec![
            "cache-stats",
            "--url",
            url,
            "--token",
            admin,
            "--min-lookups",
            min_lookups,
        ];
        if json {
            args.push("--json");
        }
        hotel_stats_owned(args)
    };

    // Only the start-up pre-warming behind it: too early to call it unhealthy.
    let fresh = cache_stats(false, "100").await;
    assert_exit(&fresh, 0);
    assert!(
        stdout(&fresh).contains("Too few lookups to assess"),
        "{}",
        stdout(&fresh)
    );

    // Ten distinct weeks, each asked once: only misses, no reuse.
    for offset in 0..10 {
        let (from, to) = (
            today() + Days::days(offset),
            today() + Days::days(offset + 7),
        );
        server
            .traffic(
                &format!("/api/availability?roomTypeId=1&startDate={from}&endDate={to}"),
                1,
            )
            .await;
    }
    let poor = cache_stats(true, "10").await;
    assert_exit(&poor, 1);
    let stats = json(&poor);
    assert_eq!(stats["assessment"], "poor", "{stats}");
    assert_eq!(stats["stats"]["hits"], 0, "{stats}");
    assert!(stats["stats"]["misses"].as_u64().unwrap() >= 10, "{stats}");
    let table = cache_stats(false, "10").await;
    assert_exit(&table, 1);
    // Piped: words, not emoji.
    assert!(stdout(&table).contains("[poor] Poor"), "{}", stdout(&table));
    // Under the default threshold of 100 lookups the same cache is not judged.
    assert_exit(&cache_stats(false, "100").await, 0);

    // The room types, asked 200 times: every answer from the cache.
    server.traffic("/api/room-types", 200).await;
    let excellent = cache_stats(true, "100").await;
    assert_exit(&excellent, 0);
    let stats = json(&excellent);
    assert_eq!(stats["assessment"], "excellent", "{stats}");
    let (hits, entries) = (
        stats["stats"]["hits"].as_u64().unwrap(),
        stats["stats"]["entries"].as_u64().unwrap(),
    );
    assert!(hits >= 200, "{stats}");
    let table = cache_stats(false, "100").await;
    assert_exit(&table, 0);
    let text = stdout(&table);
    for expected in [
        "Cache Performance Statistics".to_owned(),
        format!("Current: {entries} / 1000 entries"),
        format!("Total Hits:      {hits}"),
        format!("Hits per Entry:  {:.2}", hits as f64 / entries as f64),
        "Expired Entries:".to_owned(),
        "[ok] Excellent - high cache reuse".to_owned(),
    ] {
        assert!(text.contains(&expected), "no {expected:?} in:\n{text}");
    }

    // The server's top queries.
    let top = hotel_stats(&[
        "analyze-queries",
        "--url",
        url,
        "--token",
        admin,
        "--sort",
        "calls",
        "--top",
        "3",
        "--json",
    ])
    .await;
    assert_exit(&top, 0);
    let report = json(&top);
    assert!(report["statements"].as_u64().unwrap() > 0, "{report}");
    let queries = report["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 3, "{report}");
    let calls: Vec<u64> = queries
        .iter()
        .map(|q| q["calls"].as_u64().unwrap())
        .collect();
    assert!(
        calls.windows(2).all(|w| w[0] >= w[1]),
        "sorted by calls: {calls:?}"
    );
    let table = hotel_stats(&["analyze-queries", "--url", url, "--token", admin]).await;
    assert_exit(&table, 0);
    let text = stdout(&table);
    assert!(text.contains("Top "), "{text}");
    assert!(text.contains("by total time"), "{text}");
    assert!(text.contains("p99 ms"), "{text}");
    assert!(text.contains("room_inventory"), "{text}");

    // Refusals and an unreachable server: exit 2 with a message that says what to do.
    let refused = hotel_stats(&["cache-stats", "--url", url, "--token", "htk_not_a_token"]).await;
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("refused the token"),
        "{}",
        stderr(&refused)
    );
    assert!(stdout(&refused).is_empty());
    let guest = hotel_stats(&["analyze-queries", "--url", url, "--token", &server.guest]).await;
    assert_exit(&guest, 2);
    assert!(
        stderr(&guest).contains("not an administrator's"),
        "{}",
        stderr(&guest)
    );
    let missing = hotel_stats(&["cache-stats", "--url", url]).await;
    assert_exit(&missing, 2);
    assert!(
        stderr(&missing).contains("HOTEL_ADMIN_TOKEN"),
        "{}",
        stderr(&missing)
    );
    let nowhere = closed_port().await;
    let unreachable = hotel_stats(&["analyze-queries", "--url", &nowhere, "--token", admin]).await;
    assert_exit(&unreachable, 2);
    assert!(
        stderr(&unreachable).contains("could not reach the server"),
        "{}",
        stderr(&unreachable)
    );

    server.stop().await;
}

/// [`hotel_stats`] for arguments built at run time.
async fn hotel_stats_owned(args: Vec<&str>) -> Output {
    hotel_stats(&args).await
}

/// Rooms the inventory should show taken, night by night, against what it shows: rows where
/// they differ.
async fn inventory_mismatches(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM room_inventory i WHERE i.available_rooms <> i.total_rooms - \
             COALESCE((SELECT SUM(b.rooms_booked) FROM bookings b WHERE b.room_type_id = i.room_type_id \
             AND b.status <> 'CANCELLED' AND b.start_date <= i.date AND b.end_date > i.date), 0)",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT COUNT(*) FROM {table}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

async fn analyze_queries_times_the_hot_queries_of_a_database(db: TestDatabase) {
    let db = tiny(db).await;
    let conn = db.connection();
    let bookings = count(conn, "bookings").await;
    let out = hotel_stats(&[
        "analyze-queries",
        "--database-url",
        db.url(),
        "--runs",
        "3",
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    let report = json(&out);
    let queries = report["queries"].as_array().unwrap();
    let names: Vec<&str> = queries
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    let sample = optimized_queries::HotQuerySample {
        room_type_id: 1,
        user_id: 1,
        today: today(),
    };
    let hot: Vec<&str> = optimized_queries::hot_queries(conn, &sample)
        .iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, hot);
    for q in queries {
        assert_eq!(q["latency"]["count"], 3, "{q}");
        let (p50, p99) = (
            q["latency"]["p50_ms"].as_f64().unwrap(),
            q["latency"]["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{q}");
    }
    // A user with bookings and a week with inventory were picked from the data.
    let user_bookings = queries
        .iter()
        .find(|q| q["name"] == "user_bookings")
        .unwrap();
    assert!(user_bookings["rows"].as_u64().unwrap() > 0, "{report}");
    let take_rooms = queries
        .iter()
        .find(|q| q["name"] == "create_booking.take_rooms")
        .unwrap();
    assert_eq!(take_rooms["write"], true);
    // The write was rolled back every time.
    assert_eq!(inventory_mismatches(conn).await, 0);
    assert_eq!(count(conn, "bookings").await, bookings);

    let table = hotel_stats(&["analyze-queries", "--database-url", db.url(), "--runs", "2"]).await;
    assert_exit(&table, 0);
    let text = stdout(&table);
    for name in hot {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    assert!(
        text.contains("p95") && text.contains("write, rolled back"),
        "{text}"
    );
}

/// `check-indexes` just after the composite indexes were created again.
///
/// PostgreSQL marks an index built over broken HOT chains (rows updated since they were
/// inserted, as the bookings made and cancelled here are) `indcheckxmin`: until every
/// transaction older than the index has ended, the planner cannot use it — and other tests
/// share the server's transaction ids. So the check is repeated for a while until it passes;
/// an index that is really not used still fails it.
async fn check_indexes_of_fresh_indexes(db: &TestDatabase) -> Output {
    let started = std::time::Instant::now();
    loop {
        let check = hotel_stats(&["check-indexes", "--database-url", db.url()]).await;
        if check.status.code() == Some(0) || started.elapsed() > std::time::Duration::from_secs(30)
        {
            return check;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn check_indexes_fails_without_the_index_migration_and_passes_with_it(db: TestDatabase) {
    let db = tiny(db).await;
    let conn = db.connection();
    migration::drop_composite_indexes(conn).await.unwrap();

    let missing = hotel_stats(&["check-indexes", "--database-url", db.url()]).await;
    assert_exit(&missing, 1);
    let text = stdout(&missing);
    for spec in EXPECTED_INDEXES {
        assert!(
            text.contains(&format!("MISSING     {} ON {}", spec.name, spec.table)),
            "{} not reported missing:\n{text}",
            spec.name
        );
    }
    assert!(text.contains("FULL SCAN"), "{text}");
    assert!(text.contains("scans bookings"), "{text}");
    assert!(
        text.contains("Index::create()"),
        "a migration snippet:\n{text}"
    );
    assert!(text.contains("FAILED:"), "{text}");
    let report = json(&hotel_stats(&["check-indexes", "--database-url", db.url(), "--json"]).await);
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["indexes"]["missing"].as_array().unwrap().len(),
        EXPECTED_INDEXES.len()
    );
    // (A guest's bookings still find the unique (user_id, idempotency_key) index; the range
    // queries over bookings do not.)
    let queries = report["plans"]["queries"].as_array().unwrap();
    let scan = queries
        .iter()
        .find(|q| {
            q["verdict"] == "full_scan"
                && q["full_scans"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "bookings"))
        })
        .unwrap_or_else(|| panic!("no query scans bookings: {report}"));
    assert_eq!(scan["suggestions"][0]["table"], "bookings", "{scan}");
    assert!(report["plans"]["share_indexed"].as_f64().unwrap() < 0.95);

    migration::create_composite_indexes(conn).await.unwrap();
    let clean = check_indexes_of_fresh_indexes(&db).await;
    assert_exit(&clean, 0);
    let text = stdout(&clean);
    assert!(
        text.contains(&format!(
            "{0} of {0} expected indexes present, 0 missing",
            EXPECTED_INDEXES.len()
        )),
        "{text}"
    );
    assert!(
        !text.contains("FULL SCAN") && !text.contains("Suggested"),
        "{text}"
    );
    assert!(text.contains("(100.0 %; target above 95 %)"), "{text}");
    assert!(text.contains("OK: every expected index"), "{text}");
    let report = json(&hotel_stats(&["check-indexes", "--database-url", db.url(), "--json"]).await);
    assert_eq!(report["ok"], true);
    assert_eq!(report["plans"]["share_indexed"], 1.0);
    assert_eq!(report["plan_mode"], "forced");
}

async fn perf_table_measures_the_five_operations(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let markdown = dir.path().join("docs").join("table.md");
    let markdown_arg = markdown.display().to_string();
    let mut args = vec![
        "perf-table",
        "--scale",
        "tiny",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--markdown",
        &markdown_arg,
    ];
    // SQLite: the default temporary file; PostgreSQL: the empty test database.
    if db.backend() == Backend::Postgres {
        args.extend(["--database-url", db.url()]);
    }
    let out = hotel_stats(&args).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    let labels = [
        "Get Room Types",
        "Check Availability (7 nights)",
        "User Bookings (+ room type, payments)",
        "Create Booking",
        "Generate Report (1 year)",
    ];
    for label in labels {
        assert!(text.contains(label), "no {label} in:\n{text}");
    }
    assert!(
        text.contains("150 ms → 15 ms"),
        "the original's figures:\n{text}"
    );

    let written = std::fs::read_to_string(&markdown).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let backend = match db.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    for expected in [
        format!("### tiny dataset on {backend}"),
        "- Command: `hotel-stats perf-table --scale tiny --runs 3".to_owned(),
        format!("- Machine: {cores} cores"),
        "- Dataset: tiny (seed 42".to_owned(),
        "| Operation | Naive p50 | Naive p95 | Optimized p50 |".to_owned(),
    ] {
        assert!(
            written.contains(&expected),
            "no {expected:?} in:\n{written}"
        );
    }
    let rows: Vec<&str> = written
        .lines()
        .filter(|l| {
            labels
                .iter()
                .any(|label| l.starts_with(&format!("| {label} |")))
        })
        .collect();
    assert_eq!(rows.len(), 5, "{written}");
    assert!(
        rows[3].contains("| — |"),
        "a booking is never cached: {}",
        rows[3]
    );

    if db.backend() == Backend::Postgres {
        let conn = db.connection();
        // Every booking made while measuring was cancelled, the indexes are back.
        assert_eq!(inventory_mismatches(conn).await, 0);
        let check = check_indexes_of_fresh_indexes(&db).await;
        assert_exit(&check, 0);
        // A database with data is refused, untouched.
        let bookings = count(conn, "bookings").await;
        let again =
            hotel_stats(&["perf-table", "--scale", "tiny", "--generate-into", db.url()]).await;
        assert_exit(&again, 2);
        assert!(
            stderr(&again).contains("is not empty"),
            "{}",
            stderr(&again)
        );
        assert_eq!(count(conn, "bookings").await, bookings);
    } else {
        let out = hotel_stats(&[
            "perf-table",
            "--scale",
            "tiny",
            "--runs",
            "2",
            "--warmup",
            "0",
            "--json",
        ])
        .await;
        assert_exit(&out, 0);
        let report = json(&out);
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        for row in rows {
            assert_eq!(row["naive"]["count"], 2, "{row}");
            assert_eq!(row["optimized"]["count"], 2, "{row}");
            assert!(row["naive_over_optimized"].as_f64().unwrap() > 0.0, "{row}");
        }
        assert_eq!(rows[3]["operation"], "create-booking");
        assert!(rows[3]["cached"].is_null());
        assert_eq!(report["machine"]["cores"], cores);
        assert_eq!(report["dataset"]["scale"], "tiny");
    }
}

test_on_backends!(
    commands_against_a_running_server,
    analyze_queries_times_the_hot_queries_of_a_database,
    check_indexes_fails_without_the_index_migration_and_passes_with_it,
    perf_table_measures_the_five_operations
);

/// A command line clap refuses is, with `--json`, a JSON error on stdout like every other
/// failure (before: clap's message on stderr only, and stdout empty).
#[tokio::test]
async fn a_refused_command_line_with_json_is_a_json_error_on_stdout() {
    for args in [
        &["--json", "perf-table", "--scale", "nope"][..],
        &["--json", "no-such-command"],
        &["analyze-queries", "--top", "many", "--json"],
    ] {
        let out = hotel_stats(args).await;
        assert_exit(&out, 2);
        let error = json(&out);
        assert_eq!(error["ok"], false, "{args:?}: {error}");
        assert_eq!(error["exit_code"], 2, "{args:?}: {error}");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
    }
    // Without --json, stdout stays empty; help is still help.
    let out = hotel_stats(&["perf-table", "--scale", "nope"]).await;
    assert_exit(&out, 2);
    assert_eq!(stdout(&out), "");
    assert_exit(&hotel_stats(&["--json", "--help"]).await, 0);
}

#[tokio::test]
async fn usage_errors_exit_2_and_help_documents_the_exit_codes() {
    let help = hotel_stats(&["--help"]).await;
    assert_exit(&help, 0);
    let text = stdout(&help);
    for command in [
        "cache-stats",
        "analyze-queries",
        "check-indexes",
        "perf-table",
    ] {
        assert!(text.contains(command), "{text}");
    }
    assert!(text.contains("Exit codes:"), "{text}");
    let help = stdout(&hotel_stats(&["analyze-queries", "--help"]).await);
    for option in [
        "--url",
        "--token",
        "HOTEL_ADMIN_TOKEN",
        "--database-url",
        "--top",
        "--sort",
        "--runs",
    ] {
        assert!(
            help.contains(option),
            "analyze-queries --help lacks {option}"
        );
    }
    for bad in [
        vec!["no-such-command"],
        vec!["perf-table", "--runs", "0"],
        vec!["perf-table", "--scale", "huge"],
        vec!["analyze-queries", "--sort", "fastest"],
    ] {
        let out = hotel_stats(&bad).await;
        assert_exit(&out, 2);
        assert!(!stderr(&out).is_empty());
    }
    let absent = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", absent.path().join("none.sqlite").display());
    let out = hotel_stats(&["check-indexes", "--database-url", &url]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!Path::new(&absent.path().join("none.sqlite")).exists());
}

#[tokio::test]
async fn with_json_a_failure_is_a_json_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("typo.sqlite").display());
    for args in [
        vec![
            "--json",
            "analyze-queries",
            "--database-url",
            missing.as_str(),
        ],
        vec![
            "check-indexes",
            "--json",
            "--database-url",
            missing.as_str(),
        ],
    ] {
        let out = hotel_stats(&args).await;
        assert_exit(&out, 2);
        let report = json(&out);
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["exit_code"], 2, "{report}");
        assert!(
            report["error"].as_str().unwrap().contains("typo.sqlite"),
            "{report}"
        );
        assert!(stderr(&out).contains("error:"), "{}", stderr(&out));
    }
    assert!(!dir.path().join("typo.sqlite").exists(), "nothing created");
}
