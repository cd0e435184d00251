//! Dates: strict `YYYY-MM-DD` within 0001-01-01 ..= 9999-12-31 on every route that takes one,
//! answered 400 before any query (issue 16, item 3: PostgreSQL answered 500 for years before
//! 4713 BC; SQLite answered 200 and changed nothing for an inventory range across year 10000).

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

/// Dates no route may accept, and why.
const BAD_DATES: [&str; 9] = [
    "-5000-01-01", // before PostgreSQL's first date
    "10000-01-01", // sorts before 2026 as SQLite text
    "+2026-12-01",
    "2026-1-1",
    "2026-12-1",
    " 2026-12-01",
    "2026-12-01 ",
    "2026-02-30",
    "2026-12-01T00:00:00",
];

/// One request to every route that takes dates, with `start` (and a valid end after it).
async fn every_date_route(
    app: &TestApp,
    start: &str,
    end: &str,
) -> Vec<(String, StatusCode, Value)> {
    let admin = Some(app.admin.as_str());
    let query = format!("startDate={}&endDate={}", urlencode(start), urlencode(end));
    let body = json!({"roomTypeId": STANDARD, "startDate": start, "endDate": end});
    let requests: Vec<(Method, String, Option<&str>, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/api/availability?{query}"),
            None,
            None,
        ),
        (
            Method::GET,
            format!("/api/availability?roomTypeId={STANDARD}&{query}"),
            None,
            None,
        ),
        (
            Method::POST,
            "/api/availability/batch".to_owned(),
            None,
            Some(json!([body])),
        ),
        (
            Method::GET,
            format!("/api/admin/reports/statistics?{query}"),
            admin,
            None,
        ),
        (
            Method::GET,
            format!("/api/admin/reports/occupancy?{query}"),
            admin,
            None,
        ),
        (
            Method::PUT,
            "/api/admin/inventory".to_owned(),
            admin,
            Some(
                json!({"roomTypeId": STANDARD, "startDate": start, "endDate": end, "totalRooms": 5}),
            ),
        ),
        (
            Method::POST,
            "/api/bookings".to_owned(),
            Some(app.ann.as_str()),
            Some(json!({"roomTypeId": STANDARD, "startDate": start, "endDate": end, "rooms": 1})),
        ),
    ];
    let mut answers = Vec::new();
    for (method, path, token, body) in requests {
        let mut request = app.request(method.clone(), &path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        answers.push((format!("{method} {path}"), status, body));
    }
    answers
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn malformed_and_unstorable_dates_are_400_everywhere(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    for bad in BAD_DATES {
        for (start, end) in [(bad, "2026-12-03"), ("2026-11-28", bad)] {
            for (request, status, body) in every_date_route(&app, start, end).await {
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{request} with {start}..{end}: {body}"
                );
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("YYYY-MM-DD")
                        || message.contains("0001-01-01 to 9999-12-31")
                        || message.contains("not a day of the calendar"),
                    "{request} with {start}..{end} does not say what is wrong: {body}"
                );
            }
        }
    }
    app.shutdown().await;
}

async fn inventory_across_year_10000_is_refused_not_ignored(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let admin = Some(app.admin.as_str());
    let change = json!({"roomTypeId": STANDARD, "startDate": "9999-12-30", "endDate": "+10000-01-02", "totalRooms": 3});
    let response = app
        .request(Method::PUT, "/api/admin/inventory", admin)
        .json(&change)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;

    // The last storable nights work and read back in order on both backends.
    let change = json!({"roomTypeId": STANDARD, "startDate": "9999-12-29", "endDate": "9999-12-31", "totalRooms": 3});
    let changed = app
        .request(Method::PUT, "/api/admin/inventory", admin)
        .json(&change)
        .send()
        .await
        .unwrap();
    json(changed, StatusCode::OK).await;
    let answer = json(
        app.get(
            "/api/availability?roomTypeId=1&startDate=9999-12-29&endDate=9999-12-31",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["minAvailable"], 3, "{answer}");
    // And the first ones, in reports.
    let report = app
        .get(
            "/api/admin/reports/occupancy?startDate=0001-01-01&endDate=0001-01-03",
            admin,
        )
        .await;
    json(report, StatusCode::OK).await;
    app.shutdown().await;
}

test_on_backends!(
    malformed_and_unstorable_dates_are_400_everywhere,
    inventory_across_year_10000_is_refused_not_ignored
);
