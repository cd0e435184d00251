//! The cache key type.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A cache key: an immutable, cheaply cloned string.
///
/// Lookups accept any `AsRef<str>` (a `&str`, a `String`, a `CacheKey`), so a hit never
/// allocates; a `CacheKey` is created only when an entry is stored or a load starts.
/// Keys are compared byte for byte: build them with one function per query
/// (for example `format!("room-types:{hotel_id}")`) so that equal queries give equal keys.
///
/// # Examples
///
/// ```
/// use query_cache::CacheKey;
///
/// let key = CacheKey::from(format!("availability:{}:{}", 7, "2025-01-01"));
/// assert_eq!(key.as_str(), "availability:7:2025-01-01");
/// assert!(key.starts_with("availability:"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// Creates a key from a string.
    pub fn new(key: impl AsRef<str>) -> Self {
        CacheKey(Arc::from(key.as_ref()))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key starts with `prefix` (used by prefix invalidation).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CacheKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for CacheKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for CacheKey {
    fn from(key: &str) -> Self {
        CacheKey(Arc::from(key))
    }
}

impl From<String> for CacheKey {
    fn from(key: String) -> Self {
        CacheKey(Arc::from(key))
    }
}

impl From<&String> for CacheKey {
    fn from(key: &String) -> Self {
        CacheKey(Arc::from(key.as_str()))
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for CacheKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}
