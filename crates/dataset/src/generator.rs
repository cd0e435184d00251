//! Draws the rows of a dataset from a seeded random number generator.
//!
//! Bookings are drawn night by night against an in-memory ledger of free rooms, so a booking
//! that holds rooms is only kept when every one of its nights has them: the inventory written at
//! the end is exact by construction (available = total minus the rooms of the non-cancelled
//! bookings covering the night, never negative).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use std::collections::HashMap;

use entity::{
    BookingStatus, NotificationStatus, PaymentStatus, UserRole, WaitlistStatus, booking,
    booking_daily_stats, notification, payment, room_inventory, room_type, user, waitlist_entry,
};
use rand::{
    Rng, SeedableRng,
    distr::{Distribution, weighted::WeightedIndex},
};
use rand_chacha::ChaCha8Rng;
use sea_orm::ActiveEnum;

use crate::{
    ScaleSpec,
    catalog::{
        CATEGORIES, FIRST_NAMES, LAST_NAMES, LAYOUTS, NOTIFICATION_KINDS, PAYMENT_PROVIDERS,
        ROOM_WEIGHTS, SEASON, STAY_WEIGHTS,
    },
};

/// Share of the rooms of an average night the generator aims to sell.
const TARGET_OCCUPANCY: f64 = 0.72;
/// Deposit asked for, in percent of the stay's price.
const DEPOSIT_PERCENT: i64 = 20;

/// Bookings and their payments, in id order, handed to the loader a chunk at a time.
pub(crate) struct BookingChunk {
    pub(crate) bookings: Vec<booking::Model>,
    pub(crate) payments: Vec<payment::Model>,
}

/// What is drawn after the bookings: it depends on every booking.
pub(crate) struct Tail {
    pub(crate) inventory: Vec<room_inventory::Model>,
    pub(crate) daily_stats: Vec<booking_daily_stats::Model>,
    pub(crate) waitlist: Vec<waitlist_entry::Model>,
    pub(crate) notifications: Vec<notification::Model>,
}

pub(crate) struct Generator {
    rng: ChaCha8Rng,
    spec: ScaleSpec,
    first_night: NaiveDate,
    reference: NaiveDate,
    now: DateTime<Utc>,
    room_types: Vec<room_type::Model>,
    type_choice: WeightedIndex<f64>,
    night_choice: WeightedIndex<f64>,
    stay_choice: WeightedIndex<f64>,
    rooms_choice: WeightedIndex<f64>,
    /// Free rooms, indexed `type_index * nights + night_index`.
    free: Vec<i32>,
    /// Bookings summed by arrival date, room type and status, as `booking_daily_stats` holds them.
    daily_stats: HashMap<(NaiveDate, i64, BookingStatus), booking_daily_stats::Model>,
    bookings_made: usize,
    attempts: usize,
    next_payment_id: i64,
}

fn at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour % 24, minute % 60, 0).unwrap_or(NaiveTime::MIN);
    Utc.from_utc_datetime(&date.and_time(time))
}

fn mean(weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| (i + 1) as f64 * w)
        .sum::<f64>()
        / total
}

impl Generator {
    pub(crate) fn new(spec: ScaleSpec, seed: u64, reference: NaiveDate) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let first_night = reference - Duration::days(spec.past_nights);
        let now = at(reference, 12, 0);
        let nights = spec.nights();

        // Cheaper rooms sell more often.
        let type_weights: Vec<f64> = (0..spec.room_types)
            .map(|i| 1.0 / (1.0 + 0.08 * i as f64))
            .collect();
        let weight_sum: f64 = type_weights.iter().sum();
        let rooms_per_night = spec.bookings as f64
            * mean(&STAY_WEIGHTS)
            * mean(&ROOM_WEIGHTS)
            * 0.88 // cancelled bookings hold nothing
            / nights as f64
            / TARGET_OCCUPANCY;

        let room_types: Vec<room_type::Model> = (0..spec.room_types)
            .map(|i| {
                let (category, base) = CATEGORIES[(i / LAYOUTS.len()) % CATEGORIES.len()];
                let (layout, factor) = LAYOUTS[i % LAYOUTS.len()];
                let round = i / (CATEGORIES.len() * LAYOUTS.len());
                let name = if round == 0 {
                    format!("{category} {layout}")
                } else {
                    format!("{category} {layout} {}", round + 1)
                };
                let total_rooms = (rooms_per_night * type_weights[i] / weight_sum)
                    .ceil()
                    .max(2.0) as i32;
                let created = at(
                    first_night - Duration::days(400 + rng.random_range(0..200)),
                    9,
                    0,
                );
                room_type::Model {
                    id: i as i64 + 1,
                    description: format!(
                        "{category} room with a {} bed layout, {} m².",
                        layout.to_lowercase(),
                        18 + 4 * (i % 12)
                    ),
                    name,
                    price_per_night: base * factor / 100,
                    total_rooms,
                    created_at: created,
                    updated_at: created,
                }
            })
            .collect();

        let night_weights: Vec<f64> = (0..nights)
            .map(|n| {
                let date = first_night + Duration::days(n);
                let weekday = match date.weekday() {
                    Weekday::Fri | Weekday::Sat => 1.35,
                    Weekday::Sun => 0.85,
                    _ => 1.0,
                };
                let season = SEASON[date.month0() as usize];
                // Far-future nights are not sold yet.
                let days_ahead = (date - reference).num_days();
                let booking_curve = if days_ahead <= 30 {
                    1.0
                } else {
                    (1.0 - 0.7 * (days_ahead - 30) as f64 / 335.0).max(0.3)
                };
                weekday * season * booking_curve
            })
            .collect();

        let free = room_types
            .iter()
            .flat_map(|rt| std::iter::repeat_n(rt.total_rooms, nights as usize))
            .collect();

        // The weights above are finite and positive, so these cannot fail.
        #[allow(clippy::expect_used)]
        let weighted = |w: &[f64]| WeightedIndex::new(w.iter().copied()).expect("positive weights");
        Self {
            type_choice: weighted(&type_weights),
            night_choice: weighted(&night_weights),
            stay_choice: weighted(&STAY_WEIGHTS),
            rooms_choice: weighted(&ROOM_WEIGHTS),
            rng,
            spec,
            first_night,
            reference,
            now,
            room_types,
            free,
            daily_stats: HashMap::new(),
            bookings_made: 0,
            attempts: 0,
            next_payment_id: 1,
        }
    }

    pub(crate) fn room_types(&self) -> &[room_type::Model] {
        &self.room_types
    }

    pub(crate) fn users(&mut self) -> Vec<user::Model> {
        let total = self.spec.admins + self.spec.guests;
        (0..total)
            .map(|i| {
                let id = i as i64 + 1;
                let joined =
                    self.now - Duration::minutes(self.rng.random_range(60..3 * 365 * 24 * 60));
                if i < self.spec.admins {
                    user::Model {
                        id,
                        name: format!("Admin {}", i + 1),
                        email: format!("admin{}@hotel.example", i + 1),
                        phone: None,
                        role: UserRole::Admin,
                        created_at: joined,
                    }
                } else {
                    let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
                    let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
                    let phone = self
                        .rng
                        .random_bool(0.8)
                        .then(|| format!("+1-555-{:07}", self.rng.random_range(0..10_000_000)));
                    user::Model {
                        id,
                        name: format!("{first} {last}"),
                        email: format!("guest{}@example.com", i + 1 - self.spec.admins),
                        phone,
                        role: UserRole::Guest,
                        created_at: joined,
                    }
                }
            })
            .collect()
    }

    /// A guest id, skewed so that some guests book often.
    fn guest_id(&mut self) -> i64 {
        let u: f64 = self.rng.random();
        (self.spec.admins + (u * u * self.spec.guests as f64) as usize)
            .min(self.spec.admins + self.spec.guests - 1) as i64
            + 1
    }

    pub(crate) fn bookings_remaining(&self) -> usize {
        self.spec.bookings - self.bookings_made
    }

    /// Draws up to `size` bookings with their payments. Returns an empty chunk when done.
    pub(crate) fn next_chunk(&mut self, size: usize) -> BookingChunk {
        let mut chunk = BookingChunk {
            bookings: Vec::with_capacity(size),
            payments: Vec::with_capacity(size),
        };
        // Peaks sell out; a draw that finds a night full is redrawn, within a generous limit.
        let max_attempts = self.spec.bookings * 20;
        while chunk.bookings.len() < size
            && self.bookings_made < self.spec.bookings
            && self.attempts < max_attempts
        {
            self.attempts += 1;
            if let Some((booking, payment)) = self.draw_booking() {
                chunk.bookings.push(booking);
                chunk.payments.push(payment);
                self.bookings_made += 1;
            }
        }
        chunk
    }

    fn draw_booking(&mut self) -> Option<(booking::Model, payment::Model)> {
        let nights_total = self.spec.nights() as usize;
        let type_index = self.type_choice.sample(&mut self.rng);
        let start_index = self.night_choice.sample(&mut self.rng);
        let nights = (self.stay_choice.sample(&mut self.rng) + 1).min(nights_total - start_index);
        let rooms = self.rooms_choice.sample(&mut self.rng) as i32 + 1;
        let start_date = self.first_night + Duration::days(start_index as i64);
        let end_date = start_date + Duration::days(nights as i64);
        let status = self.draw_status(start_date, end_date);

        if status.holds_rooms() {
            let row = type_index * nights_total;
            let span = row + start_index..row + start_index + nights;
            if self.free[span.clone()].iter().any(|&free| free < rooms) {
                return None;
            }
            for free in &mut self.free[span] {
                *free -= rooms;
            }
        }

        let (room_type_id, price_per_night) = (
            self.room_types[type_index].id,
            self.room_types[type_index].price_per_night,
        );
        let total_price = price_per_night * nights as i64 * i64::from(rooms);
        let deposit_amount = total_price * DEPOSIT_PERCENT / 100;
        // Lead time: mostly weeks ahead, sometimes the same day; never after "now".
        let lead_days = (-(1.0 - self.rng.random::<f64>()).ln() * 35.0).min(300.0) as i64;
        let mut created_at = at(
            start_date - Duration::days(lead_days),
            self.rng.random_range(7..23),
            self.rng.random_range(0..60),
        );
        if created_at > self.now {
            created_at = self.now - Duration::minutes(self.rng.random_range(5..60 * 24 * 14));
        }
        let updated_at = match status {
            BookingStatus::CheckedOut => at(end_date, 11, 0),
            BookingStatus::CheckedIn => at(start_date, 15, 0),
            BookingStatus::Cancelled => {
                (created_at + Duration::days(self.rng.random_range(0..10))).min(self.now)
            }
            _ => created_at,
        }
        .min(self.now)
        .max(created_at);
        let user_id = self.guest_id();
        let id = self.bookings_made as i64 + 1;

        let (payment_status, amount, is_deposit_paid) = match status {
            BookingStatus::Provisional => (PaymentStatus::Pending, deposit_amount, false),
            BookingStatus::Confirmed => (PaymentStatus::Paid, deposit_amount, true),
            BookingStatus::CheckedIn | BookingStatus::CheckedOut => {
                (PaymentStatus::Paid, total_price, true)
            }
            BookingStatus::Cancelled => {
                if self.rng.random_bool(0.7) {
                    (PaymentStatus::Refunded, deposit_amount, true)
                } else {
                    (PaymentStatus::Failed, deposit_amount, false)
                }
            }
        };
        let paid_at = matches!(
            payment_status,
            PaymentStatus::Paid | PaymentStatus::Refunded
        )
        .then(|| created_at + Duration::minutes(self.rng.random_range(1..30)));
        let payment = payment::Model {
            id: self.next_payment_id,
            booking_id: id,
            user_id,
            amount,
            status: payment_status,
            provider: PAYMENT_PROVIDERS[self.rng.random_range(0..PAYMENT_PROVIDERS.len())]
                .to_owned(),
            paid_at,
            created_at,
        };
        self.next_payment_id += 1;
        let booking = booking::Model {
            id,
            user_id,
            room_type_id,
            start_date,
            end_date,
            rooms_booked: rooms,
            status,
            total_price,
            deposit_amount,
            is_deposit_paid,
            idempotency_key: None,
            created_at,
            updated_at,
        };
        let stats = self
            .daily_stats
            .entry((start_date, room_type_id, status))
            .or_insert_with(|| booking_daily_stats::Model {
                arrival_date: start_date,
                room_type_id,
                status,
                bookings: 0,
                rooms: 0,
                room_nights: 0,
                revenue: 0,
            });
        stats.bookings += 1;
        stats.rooms += i64::from(rooms);
        stats.room_nights += i64::from(rooms) * nights as i64;
        stats.revenue += total_price;
        Some((booking, payment))
    }

    fn draw_status(&mut self, start: NaiveDate, end: NaiveDate) -> BookingStatus {
        let roll: f64 = self.rng.random();
        if end <= self.reference {
            match roll {
                r if r < 0.50 => BookingStatus::CheckedOut,
                r if r < 0.88 => BookingStatus::Confirmed,
                _ => BookingStatus::Cancelled,
            }
        } else if start < self.reference {
            if roll < 0.88 {
                BookingStatus::CheckedIn
            } else {
                BookingStatus::Cancelled
            }
        } else {
            match roll {
                r if r < 0.78 => BookingStatus::Confirmed,
                r if r < 0.88 => BookingStatus::Provisional,
                _ => BookingStatus::Cancelled,
            }
        }
    }

    /// Inventory from the ledger, then waitlist entries and notifications.
    pub(crate) fn tail(mut self) -> Tail {
        let nights = self.spec.nights() as usize;
        let mut inventory = Vec::with_capacity(self.room_types.len() * nights);
        for (t, room_type) in self.room_types.iter().enumerate() {
            for n in 0..nights {
                inventory.push(room_inventory::Model {
                    id: inventory.len() as i64 + 1,
                    room_type_id: room_type.id,
                    date: self.first_night + Duration::days(n as i64),
                    total_rooms: room_type.total_rooms,
                    available_rooms: self.free[t * nights + n],
                });
            }
        }

        let waitlist_count = (self.spec.bookings / 50).max(5);
        let mut waitlist = Vec::with_capacity(waitlist_count);
        for i in 0..waitlist_count {
            let start = self.reference
                + Duration::days(
                    self.rng
                        .random_range(-20..self.spec.future_nights.max(2) - 1),
                );
            let end = start + Duration::days(self.rng.random_range(1..6));
            let status = if start < self.reference {
                if self.rng.random_bool(0.5) {
                    WaitlistStatus::Expired
                } else {
                    WaitlistStatus::Fulfilled
                }
            } else {
                match self.rng.random::<f64>() {
                    r if r < 0.75 => WaitlistStatus::Waiting,
                    r if r < 0.9 => WaitlistStatus::Offered,
                    _ => WaitlistStatus::Fulfilled,
                }
            };
            let room_type_id = self.room_types[self.type_choice.sample(&mut self.rng)].id;
            let user_id = self.guest_id();
            waitlist.push(waitlist_entry::Model {
                id: i as i64 + 1,
                user_id,
                room_type_id,
                start_date: start,
                end_date: end,
                status,
                created_at: (at(start, 10, 0) - Duration::days(self.rng.random_range(1..40)))
                    .min(self.now),
            });
        }

        let notification_count = (self.spec.bookings / 10).max(10);
        let mut notifications = Vec::with_capacity(notification_count);
        for i in 0..notification_count {
            let offset = Duration::minutes(
                self.rng
                    .random_range(-60 * 24 * self.spec.past_nights..60 * 24 * 30),
            );
            let scheduled_at = self.now + offset;
            let status = if scheduled_at > self.now {
                NotificationStatus::Pending
            } else if self.rng.random_bool(0.97) {
                NotificationStatus::Sent
            } else {
                NotificationStatus::Failed
            };
            let sent_at = (status == NotificationStatus::Sent)
                .then(|| scheduled_at + Duration::seconds(self.rng.random_range(1..120)));
            let user_id = self.guest_id();
            notifications.push(notification::Model {
                id: i as i64 + 1,
                user_id,
                kind: NOTIFICATION_KINDS[self.rng.random_range(0..NOTIFICATION_KINDS.len())]
                    .to_owned(),
                status,
                scheduled_at,
                sent_at,
            });
        }

        let mut daily_stats: Vec<_> = self.daily_stats.into_values().collect();
        daily_stats.sort_by_key(|s| (s.arrival_date, s.room_type_id, s.status.to_value()));

        Tail {
            inventory,
            daily_stats,
            waitlist,
            notifications,
        }
    }
}
