//! Time to live, with the original system's tiers and optional stale-while-revalidate.

use std::time::Duration;

/// How long a cached value is fresh, and optionally how long after that it may still be
/// served while one background refresh runs (stale-while-revalidate).
///
/// The tiers are the original system's `CacheTTL` values; any [`Duration`] converts too.
/// Guidance from the original: static data (room types, rules) for hours
/// ([`Ttl::LONG`]/[`Ttl::VERY_LONG`]), availability one to five minutes
/// ([`Ttl::VERY_SHORT`]/[`Ttl::SHORT`]), reports fifteen minutes ([`Ttl::MEDIUM`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use query_cache::Ttl;
///
/// assert_eq!(Ttl::SHORT.fresh_for(), Duration::from_secs(300));
/// let custom = Ttl::from(Duration::from_secs(90));
/// assert_eq!(custom.stale_grace(), Duration::ZERO);
///
/// // Serve for 15 minutes, then up to 5 more minutes of stale data while one refresh runs.
/// let report = Ttl::MEDIUM.stale_while_revalidate(Duration::from_secs(300));
/// assert_eq!(report.stale_grace(), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl {
    fresh: Duration,
    stale_grace: Duration,
}

impl Ttl {
    /// One minute: data that changes constantly (live availability).
    pub const VERY_SHORT: Ttl = Ttl::new(Duration::from_secs(60));
    /// Five minutes: availability searches, prices.
    pub const SHORT: Ttl = Ttl::new(Duration::from_secs(5 * 60));
    /// Fifteen minutes: reports and aggregates.
    pub const MEDIUM: Ttl = Ttl::new(Duration::from_secs(15 * 60));
    /// One hour: static data (room types, hotel rules).
    pub const LONG: Ttl = Ttl::new(Duration::from_secs(60 * 60));
    /// Twenty-four hours: data that changes only with a deployment or an admin edit.
    pub const VERY_LONG: Ttl = Ttl::new(Duration::from_secs(24 * 60 * 60));

    /// A TTL of `fresh` with no stale grace.
    pub const fn new(fresh: Duration) -> Ttl {
        Ttl {
            fresh,
            stale_grace: Duration::ZERO,
        }
    }

    /// The same TTL, plus a grace window after expiry during which the stale value is
    /// served while exactly one background refresh runs.
    ///
    /// If the refresh fails the stale value keeps being served (and a later request
    /// starts another refresh) until the grace window ends; after that the entry is gone
    /// and callers wait for a load as on any miss.
    pub const fn stale_while_revalidate(self, grace: Duration) -> Ttl {
        Ttl {
            fresh: self.fresh,
            stale_grace: grace,
        }
    }

    /// How long a value is fresh after it was stored.
    pub const fn fresh_for(&self) -> Duration {
        self.fresh
    }

    /// How long after expiry a stale value may be served during a refresh.
    pub const fn stale_grace(&self) -> Duration {
        self.stale_grace
    }
}

impl From<Duration> for Ttl {
    fn from(fresh: Duration) -> Ttl {
        Ttl::new(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_match_the_original_system() {
        assert_eq!(Ttl::VERY_SHORT.fresh_for(), Duration::from_secs(60));
        assert_eq!(Ttl::SHORT.fresh_for(), Duration::from_secs(300));
        assert_eq!(Ttl::MEDIUM.fresh_for(), Duration::from_secs(900));
        assert_eq!(Ttl::LONG.fresh_for(), Duration::from_secs(3600));
        assert_eq!(Ttl::VERY_LONG.fresh_for(), Duration::from_secs(86_400));
        assert_eq!(Ttl::LONG.stale_grace(), Duration::ZERO);
    }
}
