//! A guest's routes: authentication, booking, idempotency, ownership, cancellation.

use db_connect::{test_on_backends, testing::TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

async fn authentication_is_required_and_checked(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    expect_error(
        app.get("/api/me/bookings", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        app.get("/api/me/bookings", Some("htk_not-a-real-token"))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let basic = app
        .request(Method::GET, "/api/me/bookings", None)
        .header("authorization", "Basic YWxhZGRpbjpvcGVu")
        .send()
        .await
        .unwrap();
    expect_error(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.get("/api/me/bookings", Some(&app.ann)).await.status(),
        StatusCode::OK
    );

    assert!(
        server::tokens::revoke_token(app.db.connection(), &app.ann)
            .await
            .unwrap()
    );
    expect_error(
        app.get("/api/me/bookings", Some(&app.ann)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    app.shutdown().await;
}

async fn booking_lifecycle(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let created = json(
        app.book(&app.ann, STANDARD, 2, 5, 2).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (
            created["status"].as_str(),
            created["totalPrice"].as_i64(),
            created["roomsBooked"].as_i64()
        ),
        (Some("PROVISIONAL"), Some(60_000), Some(2))
    );
    assert_eq!(created["startDate"], day(2));
    let id = created["id"].as_i64().unwrap();

    let mine = json(
        app.get("/api/me/bookings", Some(&app.ann)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["roomType"]["name"], "Standard");
    let with_payments = json(
        app.get(
            "/api/me/bookings?includePayments=true&status=PROVISIONAL&limit=5",
            Some(&app.ann),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(with_payments[0]["payments"], json!([]));
    expect_error(
        app.get("/api/me/bookings?status=LOST", Some(&app.ann))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    expect_error(
        app.get("/api/me/bookings?limit=0", Some(&app.ann)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert_eq!(
        json(
            app.get("/api/me/bookings", Some(&app.bob)).await,
            StatusCode::OK
        )
        .await,
        json!([])
    );

    // Owner and admin see it; another guest cannot tell it exists.
    let shown = json(
        app.get(&format!("/api/bookings/{id}"), Some(&app.ann))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["guest"]["email"], "ann@example.com");
    assert_eq!(
        app.get(&format!("/api/bookings/{id}"), Some(&app.admin))
            .await
            .status(),
        StatusCode::OK
    );
    expect_error(
        app.get(&format!("/api/bookings/{id}"), Some(&app.bob))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/api/bookings/99999", Some(&app.ann)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/api/bookings/abc", Some(&app.ann)).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    )
    .await;

    let bob_cancel = app
        .request(
            Method::POST,
            &format!("/api/bookings/{id}/cancel"),
            Some(&app.bob),
        )
        .send()
        .await
        .unwrap();
    expect_error(bob_cancel, StatusCode::NOT_FOUND, "not_found").await;
    let still = json(
        app.get(&format!("/api/bookings/{id}"), Some(&app.ann))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        still["status"], "PROVISIONAL",
        "another guest's attempt changed nothing"
    );

    let availability = format!(
        "/api/availability?roomTypeId=1&startDate={}&endDate={}",
        day(2),
        day(5)
    );
    assert_eq!(
        json(app.get(&availability, None).await, StatusCode::OK).await["minAvailable"],
        3
    );
    let cancelled = json(
        app.request(
            Method::POST,
            &format!("/api/bookings/{id}/cancel"),
            Some(&app.ann),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            cancelled["booking"]["status"].as_str(),
            cancelled["cancelledNow"].as_bool()
        ),
        (Some("CANCELLED"), Some(true))
    );
    assert_eq!(
        json(app.get(&availability, None).await, StatusCode::OK).await["minAvailable"],
        5,
        "the rooms are back at once"
    );
    let again = json(
        app.request(
            Method::POST,
            &format!("/api/bookings/{id}/cancel"),
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["cancelledNow"], false);
    assert_eq!(
        json(app.get(&availability, None).await, StatusCode::OK).await["minAvailable"],
        5,
        "not twice"
    );
    app.shutdown().await;
}

async fn bad_booking_requests_change_nothing(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let cases = [
        (
            json!({"roomTypeId": 1, "startDate": day(-2), "endDate": day(1), "rooms": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(5), "endDate": day(3), "rooms": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(40), "rooms": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(2), "rooms": 0}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(2), "rooms": 1_000_000}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"roomTypeId": 1, "startDate": "2026-13-01", "endDate": day(2), "rooms": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"roomTypeId": "1", "startDate": day(1), "endDate": day(2), "rooms": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(2)}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(2), "rooms": 1, "userId": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"roomTypeId": 77, "startDate": day(1), "endDate": day(2), "rooms": 1}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"roomTypeId": 2, "startDate": day(1), "endDate": day(2), "rooms": 3}),
            StatusCode::CONFLICT,
            "not_available",
        ),
        (
            json!({"roomTypeId": 2, "startDate": day(58), "endDate": day(62), "rooms": 1}),
            StatusCode::CONFLICT,
            "not_available",
        ),
    ];
    for (body, status, code) in cases {
        let message = expect_error(
            app.post_json("/api/bookings", Some(&app.ann), &body).await,
            status,
            code,
        )
        .await;
        assert!(!message.contains("internal"), "{body}: {message}");
    }
    let malformed = app
        .request(Method::POST, "/api/bookings", Some(&app.ann))
        .header("content-type", "application/json")
        .body("{\"roomTypeId\": 1,,}")
        .send()
        .await
        .unwrap();
    expect_error(malformed, StatusCode::BAD_REQUEST, "invalid_json").await;
    let bad_key = app
        .request(Method::POST, "/api/bookings", Some(&app.ann))
        .header("idempotency-key", "has spaces")
        .json(&json!({"roomTypeId": 1, "startDate": day(1), "endDate": day(2), "rooms": 1}))
        .send()
        .await
        .unwrap();
    expect_error(bad_key, StatusCode::BAD_REQUEST, "bad_request").await;

    assert_eq!(
        json(
            app.get("/api/me/bookings", Some(&app.ann)).await,
            StatusCode::OK
        )
        .await,
        json!([]),
        "no request above booked anything"
    );
    let all = json(
        app.get(
            &format!("/api/availability?startDate={}&endDate={}", day(0), day(60)),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            all[0]["minAvailable"].as_i64(),
            all[1]["minAvailable"].as_i64()
        ),
        (Some(5), Some(2))
    );
    app.shutdown().await;
}

async fn idempotency_key_replays_the_first_booking(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let body = json!({"roomTypeId": 2, "startDate": day(3), "endDate": day(5), "rooms": 1});
    let send = |body: serde_json::Value| {
        app.request(Method::POST, "/api/bookings", Some(&app.ann))
            .header("idempotency-key", "order-1234")
            .json(&body)
            .send()
    };
    let first = json(send(body.clone()).await.unwrap(), StatusCode::CREATED).await;
    let replay = json(send(body.clone()).await.unwrap(), StatusCode::OK).await;
    assert_eq!(first, replay);
    let changed = json!({"roomTypeId": 2, "startDate": day(3), "endDate": day(6), "rooms": 1});
    expect_error(
        send(changed).await.unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_eq!(app.min_available(2, 3, 5).await, 1, "booked once");
    app.shutdown().await;
}

/// Issue 16 item 8: Bob sending the key Ann used gets his own booking (before the fix: 409
/// naming Ann's booking id), and a conflict on his own key tells him only about his booking.
async fn idempotency_keys_belong_to_their_user(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let send = |token: &str, body: &serde_json::Value| {
        app.request(Method::POST, "/api/bookings", Some(token))
            .header("idempotency-key", "checkout-42")
            .json(body)
            .send()
    };
    let body = json!({"roomTypeId": 1, "startDate": day(3), "endDate": day(5), "rooms": 1});
    let anns = json(send(&app.ann, &body).await.unwrap(), StatusCode::CREATED).await;
    let bobs = json(send(&app.bob, &body).await.unwrap(), StatusCode::CREATED).await;
    assert_ne!(bobs["id"], anns["id"]);
    assert_ne!(bobs["userId"], anns["userId"], "Bob's booking is his own");
    let replay = json(send(&app.bob, &body).await.unwrap(), StatusCode::OK).await;
    assert_eq!(replay, bobs);

    let changed = json!({"roomTypeId": 2, "startDate": day(3), "endDate": day(5), "rooms": 1});
    let message = expect_error(
        send(&app.bob, &changed).await.unwrap(),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(
        !message.contains(&format!("booking {}", anns["id"])),
        "nothing about Ann's booking: {message}"
    );
    let bob_mine = json(
        app.get("/api/me/bookings", Some(&app.bob)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bob_mine.as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.min_available(1, 3, 5).await,
        3,
        "two bookings, one each"
    );
    app.shutdown().await;
}

/// A repeated `Idempotency-Key` header is a 400 and books nothing (before: the first copy was
/// used silently).
async fn a_repeated_idempotency_key_header_is_refused(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let body = json!({"roomTypeId": 1, "startDate": day(3), "endDate": day(5), "rooms": 1});
    for (first, second) in [("k-1", "k-2"), ("same", "same")] {
        let response = app
            .request(Method::POST, "/api/bookings", Some(&app.ann))
            .header("idempotency-key", first)
            .header("idempotency-key", second)
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    assert_eq!(
        json(
            app.get("/api/me/bookings", Some(&app.ann)).await,
            StatusCode::OK
        )
        .await,
        json!([])
    );
    app.shutdown().await;
}

/// What the README documents: a replay after cancellation returns the cancelled booking (200)
/// and books nothing.
async fn a_replay_after_cancellation_returns_the_cancelled_booking(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let body = json!({"roomTypeId": 2, "startDate": day(3), "endDate": day(5), "rooms": 2});
    let send = || {
        app.request(Method::POST, "/api/bookings", Some(&app.ann))
            .header("idempotency-key", "retry-after-cancel")
            .json(&body)
            .send()
    };
    let first = json(send().await.unwrap(), StatusCode::CREATED).await;
    let id = first["id"].as_i64().unwrap();
    json(
        app.request(
            Method::POST,
            &format!("/api/bookings/{id}/cancel"),
            Some(&app.ann),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    let replay = json(send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        (replay["id"].as_i64(), replay["status"].as_str()),
        (Some(id), Some("CANCELLED"))
    );
    assert_eq!(
        app.min_available(2, 3, 5).await,
        2,
        "the replay booked nothing"
    );
    app.shutdown().await;
}

test_on_backends!(
    authentication_is_required_and_checked,
    booking_lifecycle,
    bad_booking_requests_change_nothing,
    idempotency_key_replays_the_first_booking,
    idempotency_keys_belong_to_their_user,
    a_repeated_idempotency_key_header_is_refused,
    a_replay_after_cancellation_returns_the_cancelled_booking,
);
