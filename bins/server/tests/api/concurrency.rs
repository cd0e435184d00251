//! Many clients at once.

use std::sync::Arc;

use db_connect::{test_on_backends, testing::TestDatabase};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

async fn hundred_bookings_for_five_rooms(test_db: TestDatabase) {
    let app = Arc::new(TestApp::spawn(test_db).await);
    let requests = (0..100).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let token = if i % 2 == 0 {
                app.ann.clone()
            } else {
                app.bob.clone()
            };
            app.book(&token, STANDARD, 10, 13, 1).await.status()
        })
    });
    let statuses: Vec<StatusCode> = join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (5, 95), "{statuses:?}");
    let availability = json(
        app.get(
            &format!(
                "/api/availability?roomTypeId=1&startDate={}&endDate={}",
                day(10),
                day(13)
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            availability["available"].as_bool(),
            availability["minAvailable"].as_i64()
        ),
        (Some(false), Some(0))
    );
    Arc::into_inner(app).unwrap().shutdown().await;
}

async fn concurrent_retries_with_one_idempotency_key(test_db: TestDatabase) {
    let app = Arc::new(TestApp::spawn(test_db).await);
    let body = json!({"roomTypeId": 2, "startDate": day(20), "endDate": day(22), "rooms": 1});
    let requests = (0..20).map(|_| {
        let (app, body) = (Arc::clone(&app), body.clone());
        tokio::spawn(async move {
            let response = app
                .request(Method::POST, "/api/bookings", Some(&app.ann))
                .header("idempotency-key", "retry-storm")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (
                status,
                response.json::<serde_json::Value>().await.unwrap()["id"].as_i64(),
            )
        })
    });
    let answers: Vec<_> = join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == StatusCode::OK).count(),
        19,
        "{answers:?}"
    );
    let mut ids: Vec<_> = answers.iter().map(|(_, id)| id.unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the same booking");
    let availability = json(
        app.get(
            &format!(
                "/api/availability?roomTypeId=2&startDate={}&endDate={}",
                day(20),
                day(22)
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(availability["minAvailable"], 1);
    Arc::into_inner(app).unwrap().shutdown().await;
}

/// The original's load test, `ab -n 1000 -c 10 /api/availability`, without errors.
async fn a_thousand_availability_requests_at_concurrency_ten(test_db: TestDatabase) {
    let app = Arc::new(TestApp::spawn(test_db).await);
    let workers = (0..10).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..100 {
                let response = app.get("/api/availability", None).await;
                if response.status() != StatusCode::OK
                    || response.json::<serde_json::Value>().await.is_err()
                {
                    failures += 1;
                }
            }
            failures
        })
    });
    let failures: u32 = join_all(workers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(failures, 0);
    let stats = app.state.hotel.cache().stats();
    assert!(
        stats.hits >= 990,
        "the load is served from the cache: {stats:?}"
    );
    Arc::into_inner(app).unwrap().shutdown().await;
}

test_on_backends!(
    multi_thread;
    hundred_bookings_for_five_rooms,
    concurrent_retries_with_one_idempotency_key,
    a_thousand_availability_requests_at_concurrency_ten,
);
