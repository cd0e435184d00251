//! The API's contract: the OpenAPI document the server serves, and schemathesis (PyPI) running
//! generated requests, valid and invalid, against every documented operation of the real
//! server. No answer may be a server error, and every answer must match the document.

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

/// Examples per operation in the fuzzing phase (the coverage phase crosses every parameter
/// with boundary and invalid values whatever this is): about 1 000 requests and 45 s per
/// backend alone on a debug build, 100 s for both backends run in parallel.
const EXAMPLES_PER_OPERATION: &str = "25";

/// The document lists every route of the API with camelCase property names, and the error
/// answers the refusals share.
async fn openapi_document_describes_the_api(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let doc = json(app.get("/api/openapi.json", None).await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/room-types", "get"),
        ("/api/availability", "get"),
        ("/api/availability/batch", "post"),
        ("/api/bookings", "post"),
        ("/api/me/bookings", "get"),
        ("/api/bookings/{id}", "get"),
        ("/api/bookings/{id}/cancel", "post"),
        ("/api/admin/inventory", "put"),
        ("/api/admin/reports/statistics", "get"),
        ("/api/admin/reports/occupancy", "get"),
        ("/api/admin/cache/stats", "get"),
        ("/api/admin/cache/clear", "post"),
        ("/api/admin/queries", "get"),
        ("/api/admin/backups", "get"),
        ("/api/admin/dashboard", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        if path.starts_with("/api/") {
            let shed = &operation["responses"]["503"];
            assert!(
                shed["headers"]["Retry-After"].is_object(),
                "{method} {path} documents 503 with Retry-After: {shed}"
            );
        }
    }
    // Types of the same name would overwrite each other's schema: each is there, with its own
    // properties.
    let schemas = &doc["components"]["schemas"];
    for (schema, property) in [
        ("InventoryUpdate", "totalRooms"),
        ("InventoryChange", "nightsUpdated"),
        ("NPlusOneView", "maxRepeats"),
        ("DashboardNPlusOne", "statement"),
        ("ErrorBody", "error"),
        ("CacheStatsView", "hitRatio"),
        ("BackupHealthView", "assessedAt"),
    ] {
        assert!(
            schemas[schema]["properties"][property].is_object(),
            "{schema}.{property}: {}",
            schemas[schema]
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"][server::openapi::BEARER]["scheme"],
        "bearer"
    );
    assert_eq!(
        paths["/api/me/bookings"]["get"]["security"][0][server::openapi::BEARER],
        serde_json::json!([])
    );
    // Every property of every schema is camelCase (no `_`), the libraries' reports included.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if let Some(properties) = schema["properties"].as_object() {
            for property in properties.keys() {
                assert!(
                    !property.contains('_'),
                    "{name}.{property} is not camelCase"
                );
            }
        }
    }
    // The browsable page is served from the binary.
    let page = app.get("/api/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger"));
    app.shutdown().await;
}

/// Every key of every object in `value`, recursively.
fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                out.push(key.clone());
                keys(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
        _ => {}
    }
}

/// The administrator routes that used to mix snake_case (the libraries' own reports) and
/// camelCase answer camelCase only.
async fn admin_answers_are_camel_case(test_db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let app = TestApp::spawn_with(test_db, |settings| {
        settings.backup_dir = Some(backups.clone())
    })
    .await;
    json(
        app.book(&app.ann, STANDARD, 1, 3, 1).await,
        StatusCode::CREATED,
    )
    .await;
    let admin = Some(app.admin.as_str());
    for path in [
        "/api/admin/cache/stats",
        "/api/admin/queries",
        "/api/admin/backups",
        "/api/admin/dashboard",
        "/api/admin/reports/statistics",
        "/api/admin/reports/occupancy",
    ] {
        let body = json(app.get(path, admin).await, StatusCode::OK).await;
        let mut found = Vec::new();
        keys(&body, &mut found);
        assert!(!found.is_empty(), "{path}: {body}");
        let snake: Vec<_> = found.iter().filter(|key| key.contains('_')).collect();
        assert!(snake.is_empty(), "{path} answers snake_case keys {snake:?}");
    }
    let cache = json(
        app.get("/api/admin/cache/stats", admin).await,
        StatusCode::OK,
    )
    .await;
    assert!(cache["stats"]["hitRatio"].is_number(), "{cache}");
    assert!(cache["assessmentText"].is_string(), "{cache}");
    let queries = json(app.get("/api/admin/queries", admin).await, StatusCode::OK).await;
    assert!(
        queries["slowThresholdMs"].as_f64().unwrap() > 0.0,
        "{queries}"
    );
    assert!(queries["queries"][0]["p95Ms"].is_number(), "{queries}");
    app.shutdown().await;
}

/// schemathesis against the running server: every documented operation, with the admin token
/// (which every authenticated route accepts), valid and invalid inputs.
async fn schemathesis_finds_no_server_error_and_no_schema_violation(test_db: TestDatabase) {
    let report_dir = tempfile::tempdir().unwrap();
    let backups = report_dir.path().join("backups");
    // With a backup directory, so /api/admin/backups answers its report rather than 404.
    let app = TestApp::spawn_with(test_db, |settings| {
        settings.backup_dir = Some(backups.clone())
    })
    .await;
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(format!("{}/api/openapi.json", app.base))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--seed",
            "14",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report-dir",
        ])
        .arg(report_dir.path())
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", app.admin))
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its example database and caches go to the scratch directory, not the source tree.
        .current_dir(report_dir.path())
        .kill_on_drop(true)
        .output()
        .await;
    let output = match run {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            db_connect::testing::service_unavailable(
                "schemathesis (pip install schemathesis)",
                &err.to_string(),
            );
            app.shutdown().await;
            return;
        }
        Err(err) => panic!("cannot run schemathesis: {err}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A run that tested nothing would pass too: it must have sent requests to the operations.
    assert!(
        stdout.contains("17 selected") || stdout.contains("17 total"),
        "schemathesis tested every operation:\n{stdout}"
    );
    app.shutdown().await;
}

test_on_backends!(
    multi_thread;
    openapi_document_describes_the_api,
    admin_answers_are_camel_case,
    schemathesis_finds_no_server_error_and_no_schema_violation
);
