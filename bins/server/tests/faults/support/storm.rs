//! A booking storm as real clients send it: several guests at once, each booking under an
//! `Idempotency-Key` of its own and retrying with the same key (on another instance when there
//! are several) until it gets a definite answer, reading availability between bookings. Every
//! answer is recorded in a [`Ledger`] for the [audit](super::audit).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Days, NaiveDate, Utc};
use entity::room_type;
use migration::{Migrator, MigratorTrait};
use optimized_queries::DateRange;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, NotSet};
use serde_json::{Value, json};

/// Room types of the seeded hotel, and the rooms each has on every night.
pub const ROOM_TYPES: [(&str, i32); 2] = [("Standard", 400), ("Suite", 200)];
/// Nights with inventory, from tomorrow.
pub const NIGHTS: u64 = 20;
/// How long one booking keeps being retried before the client gives up (its outcome stays
/// unknown, which the audit reports).
const RETRY_FOR: Duration = Duration::from_secs(90);

/// The seeded hotel: guests with their tokens.
#[derive(Debug, Clone)]
pub struct Hotel {
    /// Guest tokens.
    pub guests: Vec<String>,
}

/// Migrates the database at `url` and fills it: [`ROOM_TYPES`] with [`NIGHTS`] nights of
/// inventory from tomorrow, and `guests` guests with tokens.
pub async fn seed_hotel(url: &str, guests: usize) -> Hotel {
    let db = db_connect::connect(url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let nights = DateRange::new(first_night(), first_night() + Days::new(NIGHTS)).unwrap();
    for (name, rooms) in ROOM_TYPES {
        let id = room_type::ActiveModel {
            id: NotSet,
            name: Set(name.to_owned()),
            description: Set(format!("{name} room")),
            price_per_night: Set(10_000),
            total_rooms: Set(rooms),
            created_at: Set(Utc::now()),
            updated_at: Set(Utc::now()),
        }
        .insert(&db)
        .await
        .unwrap()
        .id;
        optimized_queries::update_inventory(&db, id, nights, rooms)
            .await
            .unwrap();
    }
    let mut tokens = Vec::new();
    for i in 0..guests {
        let email = format!("guest{i}@example.com");
        tokens.push(
            server::tokens::issue(&db, &email, None, None)
                .await
                .unwrap()
                .token,
        );
    }
    db.close().await.unwrap();
    Hotel { guests: tokens }
}

fn first_night() -> NaiveDate {
    Utc::now().date_naive() + Days::new(1)
}

/// One booking a guest asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingAsked {
    /// Its idempotency key (unique in the storm).
    pub key: String,
    /// Which guest (index into [`Hotel::guests`]).
    pub guest: usize,
    /// Room type id.
    pub room_type_id: i64,
    /// First night.
    pub start: NaiveDate,
    /// Check-out day.
    pub end: NaiveDate,
    /// Rooms each night.
    pub rooms: i32,
}

/// How a booking ended for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201 (or 200 for a retry the server recognised): the booking's id and guest's user id.
    Acknowledged {
        /// The booking's id.
        id: i64,
        /// The guest's user id.
        user_id: i64,
    },
    /// 409 `not_available`: a definite no.
    Refused,
    /// No definite answer within the retry time.
    Unknown,
}

/// Every answer the storm got.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Each booking asked for and how it ended.
    pub bookings: Vec<(BookingAsked, Outcome)>,
    /// Responses by status (0: no response: refused connection, reset, timeout).
    pub statuses: BTreeMap<u16, usize>,
    /// Every 5xx other than a 503 with `Retry-After`: what must never happen.
    pub server_errors: Vec<String>,
    /// Answers no client should get (an unexpected 4xx, a 503 without `Retry-After`).
    pub protocol_errors: Vec<String>,
}

/// A storm in progress.
pub struct Storm {
    ledger: Arc<Mutex<Ledger>>,
    answered: Arc<AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Storm {
    /// Starts `clients` clients that together ask for `bookings` bookings (1 or 2 rooms, 1 to
    /// 3 nights, seeded by `seed`) from the servers at `bases`, round robin.
    pub fn start(
        bases: Vec<String>,
        hotel: &Hotel,
        clients: usize,
        bookings: usize,
        seed: u64,
    ) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let answered = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let bases = Arc::new(bases);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut queues: Vec<Vec<BookingAsked>> = vec![Vec::new(); clients];
        for i in 0..bookings {
            let nights = rng.random_range(1..=3);
            let start = first_night() + Days::new(rng.random_range(0..NIGHTS - nights));
            queues[i % clients].push(BookingAsked {
                key: format!("storm-{seed}-{i}"),
                guest: i % hotel.guests.len(),
                room_type_id: rng.random_range(1..=ROOM_TYPES.len() as i64),
                start,
                end: start + Days::new(nights),
                rooms: rng.random_range(1..=2),
            });
        }
        let clients = queues
            .into_iter()
            .enumerate()
            .map(|(client, queue)| {
                let (ledger, answered, http, bases) = (
                    Arc::clone(&ledger),
                    Arc::clone(&answered),
                    http.clone(),
                    Arc::clone(&bases),
                );
                let tokens = hotel.guests.clone();
                tokio::spawn(async move {
                    for asked in queue {
                        let token = &tokens[asked.guest];
                        let outcome = book(&http, &bases, client, token, &asked, &ledger).await;
                        ledger
                            .lock()
                            .unwrap()
                            .bookings
                            .push((asked.clone(), outcome));
                        answered.fetch_add(1, Ordering::SeqCst);
                        read_availability(&http, &bases[client % bases.len()], &asked, &ledger)
                            .await;
                    }
                })
            })
            .collect();
        Self {
            ledger,
            answered,
            clients,
        }
    }

    /// Waits until `n` bookings have ended (acknowledged, refused or given up).
    pub async fn wait_answered(&self, n: usize) {
        while self.answered.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many bookings have ended so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Waits for every client and returns what they got.
    pub async fn finish(self) -> Ledger {
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::try_unwrap(self.ledger)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

/// Records one response's status, and what it breaks.
fn record(ledger: &Mutex<Ledger>, what: &str, status: u16, retry_after: bool, body: &Value) {
    let mut ledger = ledger.lock().unwrap();
    *ledger.statuses.entry(status).or_default() += 1;
    match status {
        503 if !retry_after => ledger
            .protocol_errors
            .push(format!("{what}: 503 without Retry-After: {body}")),
        500..=599 if status != 503 => ledger
            .server_errors
            .push(format!("{what}: {status}: {body}")),
        _ => {}
    }
}

async fn book(
    http: &reqwest::Client,
    bases: &[String],
    client: usize,
    token: &str,
    asked: &BookingAsked,
    ledger: &Mutex<Ledger>,
) -> Outcome {
    let body = json!({
        "roomTypeId": asked.room_type_id,
        "startDate": asked.start.to_string(),
        "endDate": asked.end.to_string(),
        "rooms": asked.rooms,
    });
    let deadline = Instant::now() + RETRY_FOR;
    let mut attempt = 0;
    while Instant::now() < deadline {
        // A client that lost its answer tries the next instance, as behind a load balancer.
        let base = &bases[(client + attempt) % bases.len()];
        attempt += 1;
        let sent = http
            .post(format!("{base}/api/bookings"))
            .bearer_auth(token)
            .header("idempotency-key", &asked.key)
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(_) => {
                *ledger.lock().unwrap().statuses.entry(0).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let Ok(text) = response.text().await else {
            *ledger.lock().unwrap().statuses.entry(0).or_default() += 1;
            continue;
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        record(
            ledger,
            &format!("booking {}", asked.key),
            status,
            retry_after,
            &answer,
        );
        match status {
            200 | 201 => {
                if let (Some(id), Some(user_id)) =
                    (answer["id"].as_i64(), answer["userId"].as_i64())
                {
                    return Outcome::Acknowledged { id, user_id };
                }
                ledger.lock().unwrap().protocol_errors.push(format!(
                    "booking {}: {status} without a booking: {answer}",
                    asked.key
                ));
                return Outcome::Unknown;
            }
            409 if answer["error"]["code"] == "not_available" => return Outcome::Refused,
            500..=599 => tokio::time::sleep(Duration::from_millis(150)).await,
            _ => {
                ledger.lock().unwrap().protocol_errors.push(format!(
                    "booking {}: unexpected {status}: {answer}",
                    asked.key
                ));
                return Outcome::Unknown;
            }
        }
    }
    Outcome::Unknown
}

async fn read_availability(
    http: &reqwest::Client,
    base: &str,
    asked: &BookingAsked,
    ledger: &Mutex<Ledger>,
) {
    let url = format!(
        "{base}/api/availability?roomTypeId={}&startDate={}&endDate={}",
        asked.room_type_id, asked.start, asked.end
    );
    match http.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let text = response.text().await.unwrap_or_default();
            record(
                ledger,
                "availability",
                status,
                retry_after,
                &Value::String(text),
            );
            if status < 500 && status != 200 {
                ledger
                    .lock()
                    .unwrap()
                    .protocol_errors
                    .push(format!("availability: unexpected {status}"));
            }
        }
        Err(_) => *ledger.lock().unwrap().statuses.entry(0).or_default() += 1,
    }
}
