//! The names and prices the generator draws from.

/// Room categories, cheapest first, with their base nightly price in cents.
pub(crate) const CATEGORIES: [(&str, i64); 10] = [
    ("Economy", 6_900),
    ("Standard", 8_900),
    ("Classic", 10_500),
    ("Superior", 12_900),
    ("Deluxe", 15_900),
    ("Executive", 19_900),
    ("Junior Suite", 24_900),
    ("Family Suite", 29_900),
    ("Suite", 39_900),
    ("Penthouse", 89_000),
];

/// Bed layouts, with a price factor in percent.
pub(crate) const LAYOUTS: [(&str, i64); 5] = [
    ("Double", 100),
    ("Twin", 100),
    ("Queen", 110),
    ("King", 120),
    ("Single", 80),
];

pub(crate) const FIRST_NAMES: [&str; 24] = [
    "Ada", "Ben", "Chloé", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Ivan", "Jasmin", "Kenji",
    "Lucía", "Mateo", "Nia", "Oskar", "Priya", "Quentin", "Rosa", "Samir", "Tove", "Umar", "Vera",
    "Wen", "Yusuf",
];

pub(crate) const LAST_NAMES: [&str; 20] = [
    "Andersen", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Müller", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva",
    "Tanaka", "Weber",
];

pub(crate) const PAYMENT_PROVIDERS: [&str; 3] = ["stripe", "adyen", "paypal"];

pub(crate) const NOTIFICATION_KINDS: [&str; 4] = [
    "booking_confirmed",
    "checkin_reminder",
    "payment_receipt",
    "review_request",
];

/// Relative weight of stays of 1..=14 nights: mostly short, a bump at a week.
pub(crate) const STAY_WEIGHTS: [f64; 14] = [
    30.0, 24.0, 15.0, 9.0, 6.0, 4.0, 5.0, 1.5, 1.0, 1.0, 0.8, 0.6, 0.5, 1.6,
];

/// Relative weight of bookings of 1..=4 rooms.
pub(crate) const ROOM_WEIGHTS: [f64; 4] = [85.0, 11.0, 3.0, 1.0];

/// Demand by month, January first: summer and December peaks.
pub(crate) const SEASON: [f64; 12] = [
    0.75, 0.8, 0.9, 1.0, 1.05, 1.25, 1.4, 1.4, 1.1, 1.0, 0.85, 1.15,
];
