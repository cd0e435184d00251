//! Loading a set of keys up front, before traffic arrives.

use std::collections::HashMap;
use std::fmt::Display;
use std::pin::Pin;

use tokio::task::JoinSet;

use crate::{CacheKey, Cacheable, LoadError, QueryCache, Ttl};

type Job =
    Box<dyn FnOnce(QueryCache) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// One key to load during [`QueryCache::prewarm`]: the same arguments as
/// [`with_cache`](QueryCache::with_cache), so that the pre-warmed entry is exactly what a
/// request would have cached.
pub struct PrewarmJob {
    key: CacheKey,
    run: Job,
}

impl std::fmt::Debug for PrewarmJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrewarmJob")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PrewarmJob {
    /// A job that loads `key` with `loader` and caches it for `ttl` under `tags`.
    pub fn new<T, E, F, Fut>(
        key: impl Into<CacheKey>,
        ttl: impl Into<Ttl>,
        tags: &[&str],
        loader: F,
    ) -> Self
    where
        T: Cacheable,
        E: Display + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let key = key.into();
        let ttl = ttl.into();
        let tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        let job_key = key.clone();
        PrewarmJob {
            key,
            run: Box::new(move |cache: QueryCache| {
                Box::pin(async move {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    match cache.with_cache(&job_key, ttl, &tags, loader).await {
                        Ok(_) => Ok(()),
                        Err(LoadError::Loader { source, .. }) => Err(source.to_string()),
                        Err(error) => Err(error.to_string()),
                    }
                })
            }),
        }
    }

    /// The key this job loads.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }
}

/// What [`QueryCache::prewarm`] did.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PrewarmReport {
    /// Keys loaded (or found already cached).
    pub loaded: usize,
    /// Keys whose loader failed, with the error's message.
    pub failed: Vec<PrewarmFailure>,
}

/// A key that could not be pre-warmed.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PrewarmFailure {
    /// The key.
    pub key: CacheKey,
    /// The loader's error, displayed.
    pub error: String,
}

impl QueryCache {
    /// Loads every job's key, at most `concurrency` loaders at a time (at least one), and
    /// reports what failed. Failures are not cached, so the first request for such a key
    /// loads it as usual. Loads go through [`with_cache`](Self::with_cache) and so count
    /// in the statistics like any other. Each load runs as a tokio task; a loader that
    /// panics is reported as a failure. Dropping the returned future aborts the loads
    /// still running.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use query_cache::{PrewarmJob, QueryCache, Ttl};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), query_cache::Error> {
    /// let cache = QueryCache::builder().build()?;
    /// let jobs = (1..=3_u32).map(|id| {
    ///     let key = format!("room-type:{id}");
    ///     PrewarmJob::new(key.clone(), Ttl::LONG, &[key.as_str()], move || async move {
    ///         Ok::<_, Infallible>(format!("room type {id}"))
    ///     })
    /// });
    /// let report = cache.prewarm(jobs, 4).await;
    /// assert_eq!((report.loaded, report.failed.len()), (3, 0));
    /// assert_eq!(cache.entry_count(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn prewarm(
        &self,
        jobs: impl IntoIterator<Item = PrewarmJob>,
        concurrency: usize,
    ) -> PrewarmReport {
        let mut jobs = jobs.into_iter();
        let mut running = JoinSet::new();
        let mut keys = HashMap::new();
        let mut report = PrewarmReport::default();
        loop {
            while running.len() < concurrency.max(1) {
                let Some(job) = jobs.next() else { break };
                let cache = self.clone();
                let task = running.spawn((job.run)(cache));
                keys.insert(task.id(), job.key);
            }
            let Some(finished) = running.join_next_with_id().await else {
                break;
            };
            let (id, result) = match finished {
                Ok((id, result)) => (id, result),
                // Only a panic: the set is not aborted while it is polled here.
                Err(error) => (error.id(), Err(format!("loader panicked: {error}"))),
            };
            let Some(key) = keys.remove(&id) else {
                continue;
            };
            let Err(error) = result else {
                report.loaded += 1;
                continue;
            };
            tracing::warn!(key = %key, error = %error, "cache pre-warm failed");
            report.failed.push(PrewarmFailure { key, error });
        }
        report
    }
}
