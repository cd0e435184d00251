//! How much data each scale generates.

use serde::Serialize;

/// A named size of dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// For tests: a few hundred bookings, well under a second.
    Tiny,
    /// For the demo: about 20 room types, one year of inventory, about 20k bookings.
    Small,
    /// About 200k bookings over two years.
    Medium,
    /// About 1M bookings, 100k users, 50 room types, two years of inventory.
    Large,
}

/// The counts a [`Scale`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleSpec {
    /// Room types.
    pub room_types: usize,
    /// Guests (admins come on top).
    pub guests: usize,
    /// Administrators.
    pub admins: usize,
    /// Nights of inventory before the reference date.
    pub past_nights: i64,
    /// Nights of inventory from the reference date on.
    pub future_nights: i64,
    /// Bookings to generate.
    pub bookings: usize,
}

impl ScaleSpec {
    /// Nights of inventory in all.
    pub fn nights(&self) -> i64 {
        self.past_nights + self.future_nights
    }
}

impl Scale {
    /// Every scale, smallest first.
    pub const ALL: [Scale; 4] = [Scale::Tiny, Scale::Small, Scale::Medium, Scale::Large];

    /// The counts this scale stands for.
    pub fn spec(self) -> ScaleSpec {
        match self {
            Scale::Tiny => ScaleSpec {
                room_types: 3,
                guests: 40,
                admins: 1,
                past_nights: 30,
                future_nights: 30,
                bookings: 300,
            },
            Scale::Small => ScaleSpec {
                room_types: 20,
                guests: 2_000,
                admins: 2,
                past_nights: 182,
                future_nights: 183,
                bookings: 20_000,
            },
            Scale::Medium => ScaleSpec {
                room_types: 30,
                guests: 20_000,
                admins: 3,
                past_nights: 365,
                future_nights: 365,
                bookings: 200_000,
            },
            Scale::Large => ScaleSpec {
                room_types: 50,
                guests: 100_000,
                admins: 5,
                past_nights: 365,
                future_nights: 365,
                bookings: 1_000_000,
            },
        }
    }

    /// The scale's lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Tiny => "tiny",
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scale {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scale::ALL
            .into_iter()
            .find(|scale| scale.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| crate::Error::UnknownScale(s.to_owned()))
    }
}
