//! Public routes: health, metrics, room types, availability.

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::*;

async fn health_and_metrics(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let health = json(app.get("/healthz", None).await, StatusCode::OK).await;
    assert_eq!(
        (health["status"].as_str(), health["database"].as_str()),
        (Some("ok"), Some("ok"))
    );
    app.get("/api/availability", None).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
            || metrics.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    for series in [
        "hotel_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/availability\",status=\"200\"",
        "hotel_db_query_duration_seconds",
        "hotel_cache_hits_total",
        "hotel_cache_entries",
        "hotel_db_pool_connections",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }
    let response = app.get("/nowhere", None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

async fn health_is_503_without_a_database(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    app.state.primary.close_by_ref().await.unwrap();
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
}

async fn room_types_and_availability(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let room_types = json(app.get("/api/room-types", None).await, StatusCode::OK).await;
    assert_eq!(room_types.as_array().unwrap().len(), 2);
    assert_eq!(room_types[0]["name"], "Standard");
    assert_eq!(room_types[0]["pricePerNight"], 10_000);

    // As the original's load test asks it: no parameters, every room type, tonight.
    let tonight = json(app.get("/api/availability", None).await, StatusCode::OK).await;
    let tonight = tonight.as_array().unwrap();
    assert_eq!(tonight.len(), 2);
    assert_eq!(tonight[0]["startDate"], day(0));
    assert_eq!(tonight[0]["endDate"], day(1));
    assert_eq!(
        (
            tonight[0]["available"].as_bool(),
            tonight[0]["minAvailable"].as_i64(),
            tonight[0]["roomsNeeded"].as_i64()
        ),
        (Some(true), Some(5), Some(1))
    );

    let one = json(
        app.get(
            &format!(
                "/api/availability?roomTypeId=2&startDate={}&endDate={}&rooms=2",
                day(3),
                day(6)
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        one,
        json!({"roomTypeId": 2, "startDate": day(3), "endDate": day(6), "roomsNeeded": 2, "available": true, "minAvailable": 2})
    );
    let beyond = json(
        app.get(
            &format!(
                "/api/availability?roomTypeId=1&startDate={}&endDate={}",
                day(59),
                day(62)
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            beyond["available"].as_bool(),
            beyond["minAvailable"].as_i64()
        ),
        (Some(false), Some(0))
    );

    for (query, code) in [
        ("roomTypeId=abc", "invalid_query"),
        ("rooms=0", "bad_request"),
        ("rooms=100000", "bad_request"),
        ("rooms=-3", "bad_request"),
        ("startDate=2026-02-30&endDate=2026-03-02", "invalid_query"),
        ("startDate=yesterday&endDate=2026-03-02", "invalid_query"),
        ("startDate=2026-03-05&endDate=2026-03-01", "bad_request"),
        ("startDate=2026-03-05&endDate=2026-03-05", "bad_request"),
        ("startDate=2026-03-05", "bad_request"),
        ("startDate=2026-01-01&endDate=2030-01-01", "bad_request"),
        ("roomtypeid=1", "invalid_query"),
    ] {
        let response = app.get(&format!("/api/availability?{query}"), None).await;
        let message = expect_error(response, StatusCode::BAD_REQUEST, code).await;
        assert!(!message.contains("internal"), "{query}: {message}");
    }
    let unknown = app.get("/api/availability?roomTypeId=99", None).await;
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

async fn batch_availability(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let checks = json!([
        {"roomTypeId": 2, "startDate": day(1), "endDate": day(3), "rooms": 3},
        {"roomTypeId": 1, "startDate": day(1), "endDate": day(3), "rooms": 2},
        {"roomTypeId": 1, "startDate": day(58), "endDate": day(61)},
    ]);
    let answers = json(
        app.post_json("/api/availability/batch", None, &checks)
            .await,
        StatusCode::OK,
    )
    .await;
    let summary: Vec<_> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["roomTypeId"].as_i64().unwrap(),
                a["available"].as_bool().unwrap(),
                a["minAvailable"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(2, false, 2), (1, true, 5), (1, false, 0)],
        "in the order asked"
    );

    let raw = |body: &'static str| {
        app.request(reqwest::Method::POST, "/api/availability/batch", None)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect_error(
        raw("[{\"roomTypeId\": 1,").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(raw("[{\"roomTypeId\": \"one\", \"startDate\": \"2026-01-01\", \"endDate\": \"2026-01-02\"}]").await.unwrap(), StatusCode::BAD_REQUEST, "invalid_body").await;
    expect_error(raw("[{\"roomTypeId\": 1, \"startDate\": \"2026-01-01\", \"endDate\": \"2026-01-02\", \"color\": \"red\"}]").await.unwrap(), StatusCode::BAD_REQUEST, "invalid_body").await;
    expect_error(
        raw("[]").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let unknown = json!([{"roomTypeId": 42, "startDate": day(1), "endDate": day(2)}]);
    expect_error(
        app.post_json("/api/availability/batch", None, &unknown)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let without_type = app
        .request(reqwest::Method::POST, "/api/availability/batch", None)
        .body("[]")
        .send()
        .await
        .unwrap();
    expect_error(
        without_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let huge = format!(
        "[{}]",
        vec![r#"{"roomTypeId": 1, "startDate": "2026-01-01", "endDate": "2026-01-02"}"#; 2_000]
            .join(",")
    );
    let response = app
        .request(reqwest::Method::POST, "/api/availability/batch", None)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.shutdown().await;
}

test_on_backends!(
    health_and_metrics,
    health_is_503_without_a_database,
    room_types_and_availability,
    batch_availability
);
