//! Configuration of the shared Redis tier.

use std::time::Duration;

use crate::{Error, Result};

/// Configuration of the shared Redis tier (L2), given to
/// [`QueryCacheBuilder::redis`](crate::QueryCacheBuilder::redis). Feature `redis`.
///
/// Every instance that shares data uses the same Redis and the same `prefix`: values,
/// generations and the invalidation channel all live under it, so one Redis can hold
/// several independent caches (or test runs) side by side.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use query_cache::RedisConfig;
///
/// let config = RedisConfig::new("redis://:secret@127.0.0.1:6379/0", "hotel:cache")?
///     .timeout(Duration::from_millis(50))
///     .l1_max_ttl(Duration::from_secs(5));
/// assert_eq!(config.prefix(), "hotel:cache");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), query_cache::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisConfig {
    pub(crate) client: redis::Client,
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) invalidation_timeout: Duration,
    pub(crate) l1_max_ttl: Duration,
    pub(crate) generation_retention: Duration,
    pub(crate) keepalive: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("invalidation_timeout", &self.invalidation_timeout)
            .field("l1_max_ttl", &self.l1_max_ttl)
            .field("generation_retention", &self.generation_retention)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

impl RedisConfig {
    /// Default [`timeout`](Self::timeout): 50 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
    /// Default [`invalidation_timeout`](Self::invalidation_timeout): 1 s.
    pub const DEFAULT_INVALIDATION_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default [`l1_max_ttl`](Self::l1_max_ttl): 5 s.
    pub const DEFAULT_L1_MAX_TTL: Duration = Duration::from_secs(5);
    /// Default [`generation_retention`](Self::generation_retention): 24 h.
    pub const DEFAULT_GENERATION_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
    /// Default [`keepalive`](Self::keepalive): 5 s.
    pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);

    /// The tier at `url` (`redis://[[user]:password@]host[:port][/db]`, or
    /// `redis+unix:///path`), under the key `prefix`. TLS is not compiled in: `rediss://` URLs
    /// are refused.
    ///
    /// Nothing connects yet: the cache connects when it is built, and keeps working
    /// without Redis while it cannot.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRedisUrl`] if the URL cannot be parsed, and
    /// [`Error::InvalidConfig`] if `prefix` is empty.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        let redacted = redact(url);
        let client = redis::Client::open(url).map_err(|e| Error::InvalidRedisUrl {
            url: redacted.clone(),
            reason: e.to_string(),
        })?;
        if prefix.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "the Redis key prefix must not be empty",
            });
        }
        Ok(RedisConfig {
            client,
            url: redacted,
            prefix,
            timeout: Self::DEFAULT_TIMEOUT,
            invalidation_timeout: Self::DEFAULT_INVALIDATION_TIMEOUT,
            l1_max_ttl: Self::DEFAULT_L1_MAX_TTL,
            generation_retention: Self::DEFAULT_GENERATION_RETENTION,
            keepalive: Self::DEFAULT_KEEPALIVE,
        })
    }

    /// How long a request waits for each Redis call (a read on an L1 miss, a write after a
    /// load) before it gives up on Redis and goes on with the loader (default 50 ms).
    /// Keep it well under a database query's time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the background task that applies this instance's invalidations to Redis
    /// waits for each batch before it retries (default 1 s). Prefix invalidations scan
    /// the keys under the prefix inside Redis, so they need more time than a read.
    pub fn invalidation_timeout(mut self, timeout: Duration) -> Self {
        self.invalidation_timeout = timeout;
        self
    }

    /// The longest any entry stays in this process's cache (L1) while the shared tier is
    /// configured (default 5 s): the bound on staleness when an invalidation message is
    /// lost. Entries are read again from Redis after it, which costs one round trip.
    /// `Duration::ZERO` keeps nothing in L1: every lookup goes to Redis.
    pub fn l1_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.l1_max_ttl = max_ttl;
        self
    }

    /// How long Redis remembers the generation of an invalidated key or tag (default
    /// 24 h). A load that runs longer than this could store a value invalidated during
    /// it; anything above the slowest loader is enough.
    pub fn generation_retention(mut self, retention: Duration) -> Self {
        self.generation_retention = retention;
        self
    }

    /// After this long without an invalidation message the subscription is checked with a
    /// PING, so that a connection that died silently is noticed (default 5 s).
    pub fn keepalive(mut self, keepalive: Duration) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL, with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() || self.invalidation_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "Redis timeouts must be greater than zero",
            });
        }
        if self.keepalive.is_zero() || self.generation_retention < Duration::from_millis(1) {
            return Err(Error::InvalidConfig {
                reason: "the Redis keepalive and generation retention must be greater than zero",
            });
        }
        Ok(())
    }
}

/// `url` with the password (between `user:` and `@`) replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}***{}", &url[..=colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:pw@localhost:6379/1"),
            "redis://:***@localhost:6379/1"
        );
        assert_eq!(
            redact("redis://user:p@ss@host/0"),
            "redis://user:***@host/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://user@host"), "redis://user@host");
    }

    #[test]
    fn bad_urls_and_prefixes_are_refused() {
        assert!(matches!(
            RedisConfig::new("http://:secret@nowhere", "p"),
            Err(Error::InvalidRedisUrl { url, .. }) if !url.contains("secret")
        ));
        assert!(matches!(
            RedisConfig::new("rediss://127.0.0.1", "p"),
            Err(Error::InvalidRedisUrl { .. })
        ));
        assert!(matches!(
            RedisConfig::new("redis://127.0.0.1", ""),
            Err(Error::InvalidConfig { .. })
        ));
        let zero = RedisConfig::new("redis://127.0.0.1", "p")
            .unwrap()
            .timeout(Duration::ZERO);
        assert!(zero.validate().is_err());
    }
}
