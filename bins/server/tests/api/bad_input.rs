//! Generated bad input for every route, on both backends: no request a client can send gets a
//! 5xx (issue 16's fault suite). Requests are drawn with proptest from the routes' own shapes,
//! with hostile values in every slot: numbers at and past their types' limits, malformed and
//! unstorable dates, wrong JSON types, unknown fields, oversized lists, invalid UTF-8 and
//! percent-encoding, wrong methods, garbage tokens and idempotency keys. A failure is shrunk to
//! the smallest request that still fails and printed with the seed that reproduces the run
//! (`BAD_INPUT_SEED=<seed>`; `BAD_INPUT_CASES` sets how many requests, 500 by default).
//!
//! After the storm, every night's inventory must still equal its total less the rooms of the
//! bookings that hold it.

use chrono::{Duration as Days, NaiveDate};
use db_connect::{test_on_backends, testing::TestDatabase};
use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use reqwest::{
    Method,
    header::{HeaderName, HeaderValue},
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Map, Value, json};

use crate::harness::*;

/// Who sends the request.
#[derive(Debug, Clone)]
enum Auth {
    Anonymous,
    Guest,
    Admin,
    /// Any bytes as the Authorization header.
    Raw(Vec<u8>),
}

/// What the request carries.
#[derive(Debug, Clone)]
enum Payload {
    Empty,
    Json(Value),
    /// Any bytes, with this content type (None: no header).
    Raw(Vec<u8>, Option<&'static str>),
}

#[derive(Debug, Clone)]
struct HostileRequest {
    method: Method,
    /// Path and query string, percent-encoded as sent.
    target: String,
    auth: Auth,
    payload: Payload,
    idempotency_keys: Vec<Vec<u8>>,
}

/// What a route's query or body looks like.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Nothing,
    /// Query keys this route reads.
    Query(&'static [&'static str]),
    /// A JSON object with these keys.
    Object(&'static [&'static str]),
    /// A JSON array of objects with these keys.
    Array(&'static [&'static str]),
}

const AVAILABILITY_KEYS: &[&str] = &["roomTypeId", "startDate", "endDate", "rooms"];
const REPORT_KEYS: &[&str] = &["startDate", "endDate", "roomTypeId"];
const MINE_KEYS: &[&str] = &["status", "limit", "includePayments"];
const BOOKING_KEYS: &[&str] = &["roomTypeId", "startDate", "endDate", "rooms"];
const INVENTORY_KEYS: &[&str] = &["roomTypeId", "startDate", "endDate", "totalRooms"];

/// The routes with how often each is drawn (writes and date-taking routes more often).
const ROUTES: &[(u32, &str, &str, Shape)] = &[
    (1, "GET", "/healthz", Shape::Nothing),
    (1, "GET", "/metrics", Shape::Nothing),
    (1, "GET", "/api/room-types", Shape::Nothing),
    (
        3,
        "GET",
        "/api/availability",
        Shape::Query(AVAILABILITY_KEYS),
    ),
    (
        3,
        "POST",
        "/api/availability/batch",
        Shape::Array(AVAILABILITY_KEYS),
    ),
    (6, "POST", "/api/bookings", Shape::Object(BOOKING_KEYS)),
    (2, "GET", "/api/me/bookings", Shape::Query(MINE_KEYS)),
    (2, "GET", "/api/bookings/{id}", Shape::Nothing),
    (3, "POST", "/api/bookings/{id}/cancel", Shape::Nothing),
    (
        3,
        "PUT",
        "/api/admin/inventory",
        Shape::Object(INVENTORY_KEYS),
    ),
    (
        2,
        "GET",
        "/api/admin/reports/statistics",
        Shape::Query(REPORT_KEYS),
    ),
    (
        2,
        "GET",
        "/api/admin/reports/occupancy",
        Shape::Query(REPORT_KEYS),
    ),
    (1, "GET", "/api/admin/cache/stats", Shape::Nothing),
    (1, "POST", "/api/admin/cache/clear", Shape::Nothing),
    (1, "GET", "/api/admin/queries", Shape::Nothing),
    (1, "GET", "/api/admin/backups", Shape::Nothing),
    (1, "GET", "/api/admin/dashboard", Shape::Nothing),
    (1, "GET", "/admin/dashboard", Shape::Nothing),
    (1, "GET", "/admin/dashboard/dashboard.js", Shape::Nothing),
    (1, "GET", "/admin/dashboard/dashboard.css", Shape::Nothing),
];

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A day near where dates matter: the bookable weeks, the storable edges, PostgreSQL's first
/// day, and anywhere chrono can represent.
fn near_day() -> impl Strategy<Value = NaiveDate> {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    prop_oneof![
        24 => (-5_i64..70).prop_map(|n| today() + Days::days(n)),
        2 => (-3_i64..3).prop_map(move |n| day(1, 1, 1) + Days::days(n)),
        2 => (-3_i64..3).prop_map(move |n| day(9999, 12, 31) + Days::days(n)),
        2 => (-3_i64..3).prop_map(move |n| day(-4713, 11, 24) + Days::days(n)),
        2 => (-5000_i32..-4000, 1_u32..=12).prop_map(move |(y, m)| day(y, m, 1)),
        2 => (-262_000_i32..262_000, 1_u32..=12, 1_u32..=28).prop_map(move |(y, m, d)| day(y, m, d)),
    ]
}

/// Malformed date text.
fn malformed_date() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "2026-1-1",
            "2026-12-1",
            " 2026-12-01",
            "2026-12-01 ",
            "2026-02-30",
            "2026-13-01",
            "2026-12-01T00:00:00Z",
            "20261201",
            "",
            "today",
            "0000-00-00",
        ])
        .prop_map(str::to_owned),
        "[0-9+-]{0,12}",
    ]
}

/// `(startDate, endDate)` as text: a range of a few nights from a [`near_day`] mostly (written
/// as chrono writes it: signs and five-digit years included), sometimes with one date malformed.
fn date_pair() -> impl Strategy<Value = (String, String)> {
    let pair = (near_day(), prop_oneof![6 => 1_i64..8, 1 => -2_i64..40])
        .boxed()
        .prop_map(|(start, nights)| {
            let end = start
                .checked_add_signed(Days::days(nights))
                .unwrap_or(start);
            (start.to_string(), end.to_string())
        })
        .boxed();
    prop_oneof![
        8 => pair.clone(),
        1 => (pair.clone(), malformed_date()).prop_map(|((_, end), start)| (start, end)),
        1 => (pair, malformed_date()).prop_map(|((start, _), end)| (start, end)),
    ]
}

/// Values a key takes in a well-formed request (room types 1 and 2 exist, with 5 and 2 rooms).
fn valid_number(key: &str) -> std::ops::RangeInclusive<i64> {
    match key {
        "totalRooms" => 0..=8,
        "limit" => 0..=20,
        _ => 1..=2,
    }
}

/// Integer text at and past every limit, and not integers at all.
fn integer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-3_i64..60).prop_map(|n| n.to_string()),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "9223372036854775807", "9223372036854775808", "-9223372036854775809",
            "18446744073709551615", "18446744073709551616", "2147483648", "-2147483649",
            "1e3", "1.5", "0x10", "NaN", "", " 1", "１",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Any text, including control characters and non-ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_ -]{0,12}",
        ".{0,16}",
        prop::sample::select(vec!["true", "false", "CONFIRMED", "cancelled", "null"])
            .prop_map(str::to_owned),
    ]
}

/// A value for a query-string key other than the dates: the right kind usually.
fn query_value(key: &str) -> BoxedStrategy<String> {
    let right = match key {
        "status" => prop::sample::select(vec![
            "PROVISIONAL",
            "CONFIRMED",
            "CANCELLED",
            "CHECKED_IN",
            "CHECKED_OUT",
            "confirmed",
            "",
        ])
        .prop_map(str::to_owned)
        .boxed(),
        "includePayments" => prop::sample::select(vec!["true", "false", "1", "yes", ""])
            .prop_map(str::to_owned)
            .boxed(),
        _ => prop_oneof![
            4 => valid_number(key).prop_map(|n| n.to_string()),
            1 => integer_text(),
        ]
        .boxed(),
    };
    prop_oneof![8 => right, 1 => any_text()].boxed()
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A query string for a route reading `keys`: each key present most of the time with a value of
/// its kind, the dates as a [`date_pair`]; sometimes an unknown, repeated or undecodable pair.
fn query_string(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let known: Vec<BoxedStrategy<Option<String>>> = keys
        .iter()
        .filter(|key| !key.ends_with("Date"))
        .map(|&key| {
            prop::option::weighted(
                0.7,
                query_value(key).prop_map(move |v| format!("{key}={}", encode(&v))),
            )
            .boxed()
        })
        .collect();
    let dates = keys.contains(&"startDate");
    let dates =
        prop::option::weighted(if dates { 0.8 } else { 0.05 }, date_pair()).prop_map(|pair| {
            pair.map(|(start, end)| {
                format!("startDate={}&endDate={}", encode(&start), encode(&end))
            })
        });
    let odd = prop::option::weighted(
        0.15,
        prop_oneof![
            (any_text(), any_text()).prop_map(|(k, v)| format!("{}={}", encode(&k), encode(&v))),
            prop::sample::select(vec![
                "%FF=%FE",
                "startDate=%C3%28",
                "rooms=1&rooms=2",
                "a",
                "=",
                "&&",
                "startDate",
            ])
            .prop_map(str::to_owned),
        ],
    );
    (known, dates, odd).prop_map(|(known, dates, odd)| {
        known
            .into_iter()
            .flatten()
            .chain(dates)
            .chain(odd)
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A JSON number for a body field: the right kind usually, any JSON sometimes.
fn json_number(key: &str) -> BoxedStrategy<Value> {
    prop_oneof![
        24 => valid_number(key).prop_map(Value::from),
        4 => (-3_i64..60).prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop::sample::select(vec![1.5_f64, -0.0, 1e300, -1e300, 2147483648.0])
            .prop_map(Value::from),
        1 => any_json(),
    ]
    .boxed()
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the route's keys: each present most of the time, dates as a [`date_pair`]
/// (sometimes as another JSON type), plus sometimes an unknown key.
fn json_object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let numbers: Vec<BoxedStrategy<Option<(String, Value)>>> = keys
        .iter()
        .filter(|key| !key.ends_with("Date"))
        .map(|&key| {
            prop::option::weighted(
                0.95,
                json_number(key).prop_map(move |v| (key.to_owned(), v)),
            )
            .boxed()
        })
        .collect();
    let date = |text: String| prop_oneof![10 => Just(Value::String(text)), 1 => any_json()];
    let dates = prop::option::weighted(
        0.95,
        date_pair().prop_flat_map(move |(start, end)| (date(start), date(end))),
    );
    let extra = prop::option::weighted(0.1, ("[a-z]{1,8}", any_json()));
    (numbers, dates, extra).prop_map(|(numbers, dates, extra)| {
        let mut object: Map<String, Value> = numbers.into_iter().flatten().collect();
        if let Some((start, end)) = dates {
            object.insert("startDate".to_owned(), start);
            object.insert("endDate".to_owned(), end);
        }
        if let Some((key, value)) = extra {
            object.insert(key, value);
        }
        Value::Object(object)
    })
}

fn payload(shape: Shape) -> BoxedStrategy<Payload> {
    let structured = match shape {
        Shape::Object(keys) => json_object(keys).prop_map(Payload::Json).boxed(),
        Shape::Array(keys) => prop_oneof![
            8 => prop::collection::vec(json_object(keys), 0..6).prop_map(|v| Payload::Json(Value::Array(v))),
            // Past the batch limit of 200 checks.
            1 => (195_usize..230).prop_map(|n| {
                let check = json!({"roomTypeId": 1, "startDate": today().to_string(), "endDate": (today() + Days::days(1)).to_string()});
                Payload::Json(Value::Array(vec![check; n]))
            }),
        ]
        .boxed(),
        Shape::Nothing | Shape::Query(_) => Just(Payload::Empty).boxed(),
    };
    prop_oneof![
        12 => structured,
        1 => any_json().prop_map(Payload::Json),
        1 => (
            prop::collection::vec(any::<u8>(), 0..64),
            prop::sample::select(vec![Some("application/json"), Some("text/plain"), None]),
        )
            .prop_map(|(bytes, content_type)| Payload::Raw(bytes, content_type)),
    ]
    .boxed()
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20_u8..0x7f, 1 => 0x80_u8..=0xff, 1 => Just(b'\t')],
        0..max,
    )
}

fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-2_i64..40).prop_map(|n| n.to_string()),
        1 => integer_text(),
        1 => any_text().prop_map(|t| encode(&t)),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        2 => Just(Auth::Anonymous),
        3 => Just(Auth::Guest),
        3 => Just(Auth::Admin),
        1 => prop_oneof![
            "Bearer [ -~]{0,40}".prop_map(String::into_bytes),
            header_bytes(40),
        ]
        .prop_map(Auth::Raw),
    ]
}

fn idempotency_keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        4 => Just(Vec::new()),
        2 => "[!-~]{1,20}".prop_map(|k| vec![k.into_bytes()]),
        1 => prop::collection::vec(header_bytes(300), 1..3),
    ]
}

fn hostile_request() -> impl Strategy<Value = HostileRequest> {
    let route = prop::strategy::Union::new_weighted(
        ROUTES
            .iter()
            .map(|&(weight, method, path, shape)| (weight, Just((method, path, shape)).boxed()))
            .collect(),
    );
    let method = prop_oneof![
        9 => Just(None),
        1 => prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
            .prop_map(Some),
    ];
    (route, method, id_text()).prop_flat_map(|((route_method, path, shape), method, id)| {
        let method: Method = method.unwrap_or(route_method).parse().unwrap();
        let path = path.replace("{id}", &id);
        let query = match shape {
            Shape::Query(keys) => query_string(keys).boxed(),
            _ => prop_oneof![19 => Just(String::new()), 1 => query_string(REPORT_KEYS)].boxed(),
        };
        (query, auth(), payload(shape), idempotency_keys()).prop_map(
            move |(query, auth, payload, idempotency_keys)| HostileRequest {
                method: method.clone(),
                target: if query.is_empty() {
                    path.clone()
                } else {
                    format!("{path}?{query}")
                },
                auth,
                payload,
                idempotency_keys,
            },
        )
    })
}

/// Sends the request; returns its status, or None when the client could not even build it
/// (a header value no HTTP library sends).
async fn send(app: &TestApp, request: &HostileRequest) -> Option<(u16, String)> {
    let url = format!("{}{}", app.base, request.target);
    let mut builder = app.client.request(request.method.clone(), url);
    match &request.auth {
        Auth::Anonymous => {}
        Auth::Guest => builder = builder.bearer_auth(&app.ann),
        Auth::Admin => builder = builder.bearer_auth(&app.admin),
        Auth::Raw(bytes) => {
            builder = builder.header(
                reqwest::header::AUTHORIZATION,
                HeaderValue::from_bytes(bytes).ok()?,
            )
        }
    }
    for key in &request.idempotency_keys {
        builder = builder.header(
            HeaderName::from_static("idempotency-key"),
            HeaderValue::from_bytes(key).ok()?,
        );
    }
    builder = match &request.payload {
        Payload::Empty => builder,
        Payload::Json(value) => builder.json(value),
        Payload::Raw(bytes, content_type) => {
            let builder = builder.body(bytes.clone());
            match content_type {
                Some(content_type) => builder.header(reqwest::header::CONTENT_TYPE, *content_type),
                None => builder,
            }
        }
    };
    let response = builder.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Whether the server answered without a server error.
async fn no_server_error(app: &TestApp, request: &HostileRequest) -> Result<(), String> {
    match send(app, request).await {
        Some((status, body)) if status >= 500 => Err(format!("{status}: {body}")),
        _ => Ok(()),
    }
}

fn seed() -> u64 {
    std::env::var("BAD_INPUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

async fn no_request_gets_a_server_error(test_db: TestDatabase) {
    let app = TestApp::spawn(test_db).await;
    let seed = seed();
    let cases: usize = std::env::var("BAD_INPUT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let mut seed_bytes = [0_u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = hostile_request();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..cases {
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        let answer = send(&app, &tree.current()).await;
        *statuses
            .entry(answer.as_ref().map_or(0, |(s, _)| *s))
            .or_default() += 1;
        let first = match answer {
            Some((status, body)) if status >= 500 => format!("{status}: {body}"),
            _ => continue,
        };
        // Shrink to the smallest request that still fails, as proptest would.
        let (mut smallest, mut error) = (tree.current(), first);
        let mut shrinking = tree.simplify();
        for _ in 0..500 {
            if !shrinking {
                break;
            }
            shrinking = match no_server_error(&app, &tree.current()).await {
                Err(e) => {
                    (smallest, error) = (tree.current(), e);
                    tree.simplify()
                }
                Ok(()) => tree.complicate(),
            };
        }
        panic!(
            "case {case} got a server error (BAD_INPUT_SEED={seed} reproduces the run):\n{smallest:#?}\n{error}"
        );
    }
    eprintln!("bad input: {cases} requests (BAD_INPUT_SEED={seed}), by status: {statuses:?}");
    assert_inventory_is_exact(&app).await;
    app.shutdown().await;
}

/// Every night's available rooms equal its total less the rooms of bookings that hold it.
async fn assert_inventory_is_exact(app: &TestApp) {
    let db = app.state.primary.clone();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM room_inventory i WHERE i.available_rooms <> i.total_rooms - \
             COALESCE((SELECT SUM(b.rooms_booked) FROM bookings b WHERE b.room_type_id = i.room_type_id \
             AND b.status <> 'CANCELLED' AND b.start_date <= i.date AND i.date < b.end_date), 0)",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.try_get_by_index::<i64>(0).unwrap(),
        0,
        "inventory drifted"
    );
}

test_on_backends!(no_request_gets_a_server_error);
