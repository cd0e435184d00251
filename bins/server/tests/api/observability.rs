//! What an operator scrapes and reads: /metrics under one `hotel_` namespace with Prometheus
//! conventions, the shipped alert and recording rules and Grafana dashboard naming only
//! metrics that exist, and one access-log line per request.

use std::{collections::BTreeSet, path::Path, process::Command};

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{
    harness::*,
    server_process::{BIN, ServerProcess},
};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");

/// The metric families of a Prometheus text (`# TYPE name kind`), with their kind.
fn metric_families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.to_owned()))
        })
        .collect()
}

/// The metric names a rule file or dashboard mentions: words starting with `hotel_` or
/// `backup_` (recording rules are `hotel:…` and checked apart).
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("hotel_") || word.starts_with("backup_"))
        // `hotel_…` in a comment is a namespace, not a metric.
        .filter(|word| !word.ends_with('_'))
        .map(str::to_owned)
        .collect()
}

/// Whether `name` (as written in a query: `x`, `x_total`, `x_bucket`, …) is a series of one of
/// `families`.
fn exported(name: &str, families: &[(String, String)]) -> bool {
    families.iter().any(|(family, kind)| {
        let series: &[&str] = match kind.as_str() {
            "counter" => &["_total", ""],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        series
            .iter()
            .any(|suffix| name == format!("{family}{suffix}"))
    })
}

fn deploy_file(relative: &str) -> String {
    std::fs::read_to_string(Path::new(DEPLOY).join(relative))
        .unwrap_or_else(|e| panic!("deploy/{relative}: {e}"))
}

/// Runs `promtool ARGS` with `input` on stdin; `None` (after a SKIP line, or a failure when
/// services are required) without promtool.
fn promtool(args: &[&str], input: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            db_connect::testing::service_unavailable(
                "promtool (apt-get install prometheus)",
                &e.to_string(),
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

async fn metrics_follow_prometheus_conventions_and_the_rules_name_real_series(
    test_db: TestDatabase,
) {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let app = TestApp::spawn_with(test_db, |settings| {
        settings.backup_dir = Some(backups.clone())
    })
    .await;
    // Traffic that touches every kind of series: cache hits and misses, a write, a 404.
    for _ in 0..3 {
        json(app.get("/api/room-types", None).await, StatusCode::OK).await;
    }
    json(
        app.book(&app.ann, STANDARD, 1, 3, 1).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        app.get("/nowhere", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let families = metric_families(&text);
    assert!(families.len() > 20, "{text}");

    for (name, kind) in &families {
        assert!(
            name.starts_with("hotel_"),
            "{name} is outside the hotel_ namespace"
        );
        assert!(
            !name.contains("_ratio"),
            "{name}: ratios are recording rules, not gauges"
        );
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "{name} is a {kind}"
        );
    }
    for (name, _) in families.iter().filter(|(_, kind)| kind == "counter") {
        // Counts are integers; only durations (`…_seconds_total`) are fractional.
        if name.ends_with("_seconds") {
            continue;
        }
        for line in text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_total")))
        {
            let value = line.rsplit(' ').next().unwrap();
            assert!(
                value.parse::<u64>().is_ok(),
                "counter sample is not an integer: {line}"
            );
        }
    }
    // The fingerprint label is bounded: the 50 busiest shapes, the rest as `other`.
    let fingerprints: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split("fingerprint=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(!fingerprints.is_empty(), "{text}");
    assert!(fingerprints.len() <= 51, "{fingerprints:?}");

    // Every metric the rules and the dashboard use exists: `hotel_…` in this scrape,
    // `backup_…` in what `hotel-backup monitor --prometheus` writes.
    let repo = backup::BackupRepository::open(&backups).unwrap();
    let health = backup::monitor::assess(
        &repo,
        &backup::monitor::HealthPolicy::default(),
        chrono::Utc::now(),
    )
    .await;
    let backup_families = metric_families(&health.prometheus_text());
    let replica_families = metric_families(&replica_scrape());
    let recording = deploy_file("prometheus/recording-rules.yml");
    let recorded: BTreeSet<String> = recording
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        recorded.contains("hotel:cache_hit_ratio:rate5m"),
        "{recorded:?}"
    );
    for file in [
        "prometheus/recording-rules.yml",
        "prometheus/alert-rules.yml",
        "grafana/hotel-server.json",
    ] {
        let content = deploy_file(file);
        let names = metric_names(&content);
        assert!(!names.is_empty(), "{file} names no metric");
        for name in &names {
            if name.contains(':') {
                assert!(recorded.contains(name), "{file}: no recording rule {name}");
            } else if name.starts_with("hotel_replica_") {
                // Exported only with a read replica, which this server has not.
                assert!(
                    exported(name, &replica_families),
                    "{file}: the read replica's collector exports no {name}"
                );
            } else if name.starts_with("hotel_") {
                assert!(exported(name, &families), "{file}: /metrics has no {name}");
            } else {
                assert!(
                    exported(name, &backup_families),
                    "{file}: hotel-backup monitor writes no {name}"
                );
            }
        }
    }
    let dashboard: Value = serde_json::from_str(&deploy_file("grafana/hotel-server.json")).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);

    // promtool's own lint of the scrape (names, suffixes, help texts).
    if let Some(lint) = promtool(&["check", "metrics"], &text) {
        assert!(
            lint.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
    }
    app.shutdown().await;
}

/// What /metrics adds for a read replica: the collector of a router with a replica (one never
/// checked: not streaming yet), under the server's prefix.
fn replica_scrape() -> String {
    let primary = sea_orm::DatabaseConnection::default();
    let reads = db_connect::ReadRouter::with_replica(
        primary.clone(),
        primary,
        db_connect::ReplicaSettings::default(),
    );
    let mut registry = prometheus_client::registry::Registry::with_prefix("hotel");
    registry.register_collector(Box::new(server::replica_metrics::ReplicaMetrics::new(
        reads,
    )));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The shipped rules pass `promtool check rules` and their unit tests (`tests.yml`).
#[test]
fn alert_and_recording_rules_pass_promtool() {
    let dir = Path::new(DEPLOY).join("prometheus");
    let check = Command::new("promtool")
        .args(["check", "rules", "alert-rules.yml", "recording-rules.yml"])
        .current_dir(&dir)
        .output();
    let check = match check {
        Ok(output) => output,
        Err(e) => {
            db_connect::testing::service_unavailable(
                "promtool (apt-get install prometheus)",
                &e.to_string(),
            );
            return;
        }
    };
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = Command::new("promtool")
        .args(["test", "rules", "tests.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// Routes, probes, the fallback and a method a route does not take all go through every layer
/// of `app()`, which gives them to the router per group of routes (probes and the API, so
/// that probes are never shed): each answer carries a request id (the client's when it sends
/// one), compression is negotiated, and each request is counted under its route and status.
async fn every_kind_of_request_goes_through_every_layer(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let cases = [
        (Method::GET, "/api/availability", StatusCode::OK),
        (Method::GET, "/healthz", StatusCode::OK),
        (Method::GET, "/nowhere", StatusCode::NOT_FOUND),
        (
            Method::DELETE,
            "/api/availability",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, status) in &cases {
        let made = app
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), *status, "{method} {path}");
        let id = made.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{method} {path}: a UUID, not {id:?}");
        let given = app
            .request(method.clone(), path, None)
            .header("x-request-id", "given-7")
            .send()
            .await
            .unwrap();
        assert_eq!(
            given.headers()["x-request-id"],
            "given-7",
            "{method} {path}"
        );
    }
    let gzip = app
        .request(Method::GET, "/api/room-types", None)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.status(), StatusCode::OK);
    assert_eq!(gzip.headers()["content-encoding"], "gzip");

    let text = app.get("/metrics", None).await.text().await.unwrap();
    for (method, path, status) in &cases {
        let route = if *status == StatusCode::NOT_FOUND {
            "unmatched"
        } else {
            path
        };
        let series = format!(
            "hotel_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{}\"}} ",
            status.as_u16()
        );
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|count| count.parse::<u64>().ok());
        assert!(count >= Some(2), "{series}:\n{text}");
    }
}

/// One INFO line per answered request under the `access_log` target, with the request's
/// method, path and status; `RUST_LOG=…,access_log=off` turns it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_an_access_log_line_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let start = |rust_log: &str| {
        let mut command = Command::new(BIN);
        command
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("hotel.sqlite").display()),
            )
            .env("BACKUP_DIR", dir.path().join("backups"))
            .env("RUST_LOG", rust_log);
        ServerProcess::start(command)
    };
    let client = reqwest::Client::new();

    let server = start("info");
    let base = format!("http://{}", server.address);
    let ok = client
        .get(format!("{base}/api/room-types"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let missing = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let access = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["target"] == "access_log")
            .cloned()
            .collect()
    };
    while access(&lines).len() < 2 && std::time::Instant::now() < deadline {
        lines.extend(
            server
                .drain_logs()
                .iter()
                .filter_map(|l| l.strip_prefix("err:"))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logged = access(&lines);
    assert_eq!(logged.len(), 2, "{lines:#?}");
    for (line, path, status) in [
        (&logged[0], "/api/room-types", 200),
        (&logged[1], "/nowhere", 404),
    ] {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["fields"]["status"], status, "{line}");
        assert!(line["fields"]["latency_ms"].is_number(), "{line}");
        assert_eq!(line["span"]["path"], path, "{line}");
        assert_eq!(line["span"]["method"], "GET", "{line}");
        assert!(line["span"]["request_id"].is_string(), "{line}");
    }
    assert!(server.stop().success());

    let quiet = start("info,access_log=off");
    let base = format!("http://{}", quiet.address);
    let ok = client
        .get(format!("{base}/api/room-types"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (status, lines) = quiet.stop_and_collect();
    assert!(status.success());
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM")),
        "the logs were read to the end: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("access_log")),
        "access log turned off: {lines:#?}"
    );
}

test_on_backends!(
    multi_thread;
    metrics_follow_prometheus_conventions_and_the_rules_name_real_series,
    every_kind_of_request_goes_through_every_layer
);
