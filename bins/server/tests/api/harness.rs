//! Spawns the real server on port 0 over a fresh database with known data.

use std::{sync::Arc, time::Duration};

use chrono::{Duration as Days, NaiveDate, Utc};
use dataset::insert_room_type;
use db_connect::testing::TestDatabase;
use entity::UserRole;
use migration::Migrator;
use optimized_queries::DateRange;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use server::{
    app::HttpLimits,
    startup::{self, Settings},
    state::AppState,
    tokens,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const STANDARD: i64 = 1;
pub const SUITE: i64 = 2;

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// `today + n` as `YYYY-MM-DD`.
pub fn day(n: i64) -> String {
    (today() + Days::days(n)).to_string()
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub state: AppState,
    pub admin: String,
    pub ann: String,
    pub bob: String,
    pub db: Arc<TestDatabase>,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Standard (10 000/night, 5 rooms) and Suite (30 000/night, 2 rooms) with 60 nights of
    /// inventory from today; an admin and two guests, Ann and Bob, with tokens.
    pub async fn spawn(test_db: TestDatabase) -> Self {
        Self::spawn_with(test_db, |_| {}).await
    }

    pub async fn spawn_with(test_db: TestDatabase, adjust: impl FnOnce(&mut Settings)) -> Self {
        let test_db = test_db.migrated::<Migrator>().await;
        let db = test_db.connection();
        assert_eq!(
            insert_room_type(db, "Standard", 10_000, 5).await.unwrap(),
            STANDARD
        );
        assert_eq!(
            insert_room_type(db, "Suite", 30_000, 2).await.unwrap(),
            SUITE
        );
        let nights = DateRange::new(today(), today() + Days::days(60)).unwrap();
        optimized_queries::update_inventory(db, STANDARD, nights, 5)
            .await
            .unwrap();
        optimized_queries::update_inventory(db, SUITE, nights, 2)
            .await
            .unwrap();
        let admin = tokens::issue(db, "admin@hotel.example", Some(UserRole::Admin), None)
            .await
            .unwrap();
        let ann = tokens::issue(db, "ann@example.com", None, Some("Ann"))
            .await
            .unwrap();
        let bob = tokens::issue(db, "bob@example.com", None, Some("Bob"))
            .await
            .unwrap();

        let mut settings = Settings {
            cache_max_entries: 10_000,
            ..Settings::new(test_db.url())
        };
        adjust(&mut settings);
        Self::start(
            Arc::new(test_db),
            settings,
            admin.token,
            ann.token,
            bob.token,
        )
        .await
    }

    async fn start(
        db: Arc<TestDatabase>,
        settings: Settings,
        admin: String,
        ann: String,
        bob: String,
    ) -> Self {
        let state = startup::build_state(&settings).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(startup::serve(
            listener,
            state.clone(),
            HttpLimits::default(),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            base,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            state,
            admin,
            ann,
            bob,
            db,
            settings,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A second server instance on the same database (and the same Redis, if any), as behind
    /// a load balancer; `adjust` may change its settings.
    pub async fn another_instance(&self, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        Self::start(
            Arc::clone(&self.db),
            settings,
            self.admin.clone(),
            self.ann.clone(),
            self.bob.clone(),
        )
        .await
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn book(
        &self,
        token: &str,
        room_type: i64,
        from: i64,
        to: i64,
        rooms: i64,
    ) -> Response {
        let body = serde_json::json!({"roomTypeId": room_type, "startDate": day(from), "endDate": day(to), "rooms": rooms});
        self.post_json("/api/bookings", Some(token), &body).await
    }

    /// The fewest rooms of `room_type` free on any night from day `from` to day `to` (public
    /// availability, through the cache like any client's read).
    pub async fn min_available(&self, room_type: i64, from: i64, to: i64) -> Value {
        let path = format!(
            "/api/availability?roomTypeId={room_type}&startDate={}&endDate={}",
            day(from),
            day(to)
        );
        json(self.get(&path, None).await, StatusCode::OK).await["minAvailable"].clone()
    }

    /// Stops accepting, waits for the server task (in-flight requests finish first).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap()
    }
}

/// Asserts the status and the error code of a JSON error answer, and returns its message.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> String {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!message.is_empty(), "an error says what is wrong: {body}");
    message
}

pub async fn json(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap()
}
