//! Errors returned by the cache.

use std::sync::Arc;

use crate::CacheKey;

/// What the cache itself can fail with (as opposed to a loader's own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key holds (or is being loaded as) a value of another type than the one asked for.
    ///
    /// Two call sites use the same key for different types: give them distinct keys.
    #[error("cache key `{key}` holds a `{found}`, not the requested `{expected}`")]
    TypeMismatch {
        /// The key that was looked up.
        key: CacheKey,
        /// The type the caller asked for.
        expected: &'static str,
        /// The type that is stored (or that the running loader produced).
        found: &'static str,
    },
    /// The configuration given to [`QueryCacheBuilder::build`](crate::QueryCacheBuilder::build)
    /// cannot work.
    #[error("invalid cache configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// The Redis URL given to `RedisConfig::new` (feature `redis`) cannot be used.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidRedisUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// Why the Redis client refused it.
        reason: String,
    },
    /// A value could not be encoded for the shared tier (its `Serialize` implementation
    /// failed). The value is still cached in the process.
    #[error("cannot encode a value for the shared cache tier: {reason}")]
    Encode {
        /// The serializer's message.
        reason: String,
    },
    /// Bytes from the shared tier were written by another type, schema version or
    /// envelope format than the reader's [`SharedCodec`](crate::SharedCodec). The cache
    /// treats this as a miss.
    #[error("shared cache entry has schema {found:?}, expected {expected:016x}")]
    SchemaMismatch {
        /// The reader's schema fingerprint.
        expected: u64,
        /// The fingerprint found in the bytes, or `None` if they are not an envelope of
        /// the current format.
        found: Option<u64>,
    },
    /// Bytes from the shared tier carry the reader's schema but do not decode as its type
    /// (the type changed without a version bump). The cache treats this as a miss.
    #[error("cannot decode a shared cache entry: {reason}")]
    Decode {
        /// The deserializer's message.
        reason: String,
    },
}

/// `Result` with the crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error of [`QueryCache::with_cache`](crate::QueryCache::with_cache): either the loader
/// failed, or the cache refused the request.
///
/// The loader's error is shared (`Arc<E>`) because with single flight one loader run
/// answers every caller that waited for it, and every one of them gets the same error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader returned an error. It was not cached: the next call loads again.
    #[error("loader for cache key `{key}` failed")]
    Loader {
        /// The key whose loader failed.
        key: CacheKey,
        /// The loader's error, shared by every caller that waited on this load.
        #[source]
        source: Arc<E>,
    },
    /// The cache refused the request (for example a type mismatch).
    #[error(transparent)]
    Cache(#[from] Error),
}

impl<E> LoadError<E> {
    /// The loader's error, if this is a loader failure.
    pub fn loader_error(&self) -> Option<&E> {
        match self {
            LoadError::Loader { source, .. } => Some(source),
            LoadError::Cache(_) => None,
        }
    }
}

// Hand-written so that `E` needs no `Clone`: the loader error is behind an `Arc`.
impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Loader { key, source } => LoadError::Loader {
                key: key.clone(),
                source: Arc::clone(source),
            },
            LoadError::Cache(error) => LoadError::Cache(error.clone()),
        }
    }
}
