//! Administrator routes and their authorisation.

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

const ADMIN_ROUTES: [(&str, &str); 9] = [
    ("PUT", "/api/admin/inventory"),
    ("GET", "/api/admin/reports/statistics"),
    ("GET", "/api/admin/reports/occupancy"),
    ("GET", "/api/admin/cache/stats"),
    ("POST", "/api/admin/cache/clear"),
    ("GET", "/api/admin/queries"),
    ("GET", "/api/admin/backups"),
    ("GET", "/api/admin/dashboard"),
    (
        "GET",
        "/api/admin/reports/statistics?startDate=2026-01-01&endDate=2026-02-01",
    ),
];

async fn admin_routes_refuse_guests(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    for (method, path) in ADMIN_ROUTES {
        let method: Method = method.parse().unwrap();
        let anonymous = app
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let guest = app
            .request(method, path, Some(&app.ann))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_error(guest, StatusCode::FORBIDDEN, "forbidden").await;
    }
    app.shutdown().await;
}

async fn inventory_reports_cache_and_queries(test_db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backups");
    let app = TestApp::spawn_with(test_db, |settings| {
        settings.backup_dir = Some(backup_dir.clone())
    })
    .await;
    let admin = Some(app.admin.as_str());
    json(
        app.book(&app.ann, STANDARD, 1, 4, 2).await,
        StatusCode::CREATED,
    )
    .await;

    let change = json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(3), "totalRooms": 8});
    let changed = json(
        app.request(Method::PUT, "/api/admin/inventory", admin)
            .json(&change)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed, json!({"nightsUpdated": 2, "nightsCreated": 0}));
    let availability = json(
        app.get(
            &format!(
                "/api/availability?roomTypeId=1&startDate={}&endDate={}",
                day(1),
                day(4)
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        availability["minAvailable"], 3,
        "night 3 still has 5 total, 2 booked"
    );
    let too_few = json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(3), "totalRooms": 1});
    expect_error(
        app.request(Method::PUT, "/api/admin/inventory", admin)
            .json(&too_few)
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let negative =
        json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(3), "totalRooms": -5});
    expect_error(
        app.request(Method::PUT, "/api/admin/inventory", admin)
            .json(&negative)
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    let range = format!("startDate={}&endDate={}", day(0), day(30));
    let stats = json(
        app.get(&format!("/api/admin/reports/statistics?{range}"), admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (stats["totalBookings"].as_i64(), stats["revenue"].as_i64()),
        (Some(1), Some(60_000))
    );
    let occupancy = json(
        app.get(
            &format!("/api/admin/reports/occupancy?{range}&roomTypeId=1"),
            admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(occupancy["roomNightsSold"], 6);
    expect_error(
        app.get("/api/admin/reports/occupancy?startDate=2026-05-01", admin)
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    let cache = json(
        app.get("/api/admin/cache/stats", admin).await,
        StatusCode::OK,
    )
    .await;
    assert!(cache["stats"]["entries"].as_u64().unwrap() > 0);
    assert!(["excellent", "good", "poor"].contains(&cache["assessment"].as_str().unwrap()));
    let cleared = json(
        app.request(Method::POST, "/api/admin/cache/clear", admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(cleared["cleared"].as_u64().unwrap() > 0);
    assert_eq!(
        json(
            app.get("/api/admin/cache/stats", admin).await,
            StatusCode::OK
        )
        .await["stats"]["entries"],
        0
    );

    let queries = json(app.get("/api/admin/queries", admin).await, StatusCode::OK).await;
    assert!(queries["statements"].as_u64().unwrap() > 0);
    assert!(queries["queries"].as_array().unwrap().iter().any(|q| {
        q["fingerprint"]
            .as_str()
            .unwrap()
            .contains("room_inventory")
    }));

    // No backup yet: the health check says so, as `hotel-backup monitor` would.
    let backups = json(app.get("/api/admin/backups", admin).await, StatusCode::OK).await;
    assert_eq!(backups["status"], "CRITICAL", "{backups}");
    let dashboard = json(app.get("/api/admin/dashboard", admin).await, StatusCode::OK).await;
    assert_eq!(dashboard["backups"]["status"], "CRITICAL");
    assert!(dashboard["http"]["requests"].as_u64().unwrap() > 5);
    assert!(
        dashboard["queries"]
            .as_array()
            .is_some_and(|q| !q.is_empty())
    );
    app.shutdown().await;
}

test_on_backends!(
    admin_routes_refuse_guests,
    inventory_reports_cache_and_queries
);
