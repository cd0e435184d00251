//! Building the state from the configuration, and serving until told to stop.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use optimized_queries::HotelCache;
use perf_stats::{MetricsRegistry, QueryTracker};
use query_cache::{QueryCache, RedisConfig};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{app::HttpLimits, http_metrics::HttpMetrics, state::AppState};

/// What [`build_state`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The primary database.
    pub database_url: String,
    /// A PostgreSQL streaming standby of the primary for reports, if any.
    pub read_replica_url: Option<String>,
    /// How long a report waits for the standby to replay the primary's latest writes before
    /// it reads the primary instead.
    pub replica_max_wait: Duration,
    /// The cache's entry bound.
    pub cache_max_entries: usize,
    /// Redis for the shared tier, if any.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys and channel.
    pub redis_prefix: String,
    /// With Redis: the longest an entry stays in this instance's cache, the staleness bound
    /// when an invalidation message is lost (zero: every lookup reads Redis).
    pub l1_max_ttl: Duration,
    /// The slow-query threshold.
    pub slow_query: Duration,
    /// The backup directory (None: no backups, no pre-migration gate).
    pub backup_dir: Option<std::path::PathBuf>,
    /// Migrate without the pre-migration backup.
    pub skip_backup: bool,
    /// SQLite: whether every commit is on disk before it returns (see
    /// [`db_connect::ConnectionSettings::durable_commits`]). Default true.
    pub durable_commits: bool,
}

impl Settings {
    /// Settings for `database_url` with the command line's defaults: no replica, no Redis, no
    /// backup directory, 50 000 cache entries, slow at 100 ms, durable commits.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            read_replica_url: None,
            replica_max_wait: db_connect::ReplicaSettings::default().max_wait,
            cache_max_entries: 50_000,
            redis_url: None,
            redis_prefix: "hotel:cache".to_owned(),
            l1_max_ttl: Duration::from_secs(5),
            slow_query: Duration::from_millis(100),
            backup_dir: None,
            skip_backup: false,
            durable_commits: true,
        }
    }
}

/// Connects, migrates (behind a verified backup when the database holds data), instruments
/// and pre-warms: everything but listening.
///
/// # Errors
///
/// When a database cannot be reached, a migration or its backup fails, or the cache cannot be
/// built.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let tracker = QueryTracker::builder()
        .slow_threshold(settings.slow_query)
        .build()
        .context("while configuring query statistics")?;
    let connection = db_connect::ConnectionSettings {
        durable_commits: settings.durable_commits,
        ..db_connect::ConnectionSettings::default()
    };
    let mut primary = db_connect::connect_with(&settings.database_url, &connection)
        .await
        .with_context(|| {
            format!(
                "while connecting to {}",
                db_connect::redact_password(&settings.database_url)
            )
        })?;
    migrate(
        &primary,
        &settings.database_url,
        settings.backup_dir.as_deref(),
        settings.skip_backup,
    )
    .await?;
    tracker.attach(&mut primary);
    let reads = match &settings.read_replica_url {
        Some(url) => {
            let mut replica = connect_replica(url, &primary).await?;
            tracker.attach(&mut replica);
            let settings = db_connect::ReplicaSettings {
                max_wait: settings.replica_max_wait,
            };
            let reads = db_connect::ReadRouter::with_replica(primary.clone(), replica, settings);
            reads.check().await;
            reads.spawn_monitor(REPLICA_CHECK_INTERVAL);
            reads
        }
        None => db_connect::ReadRouter::from(&primary),
    };

    let mut builder = QueryCache::builder().max_entries(settings.cache_max_entries);
    if let Some(url) = &settings.redis_url {
        let config = RedisConfig::new(url, settings.redis_prefix.clone())
            .context("while reading REDIS_URL")?
            .l1_max_ttl(settings.l1_max_ttl);
        builder = builder.redis(config);
    }
    let cache = builder.build().context("while building the query cache")?;
    if settings.redis_url.is_some() {
        // The first subscription clears L1: connect before pre-warming.
        if cache.wait_for_redis(Duration::from_secs(2)).await {
            tracing::info!(prefix = %settings.redis_prefix, "shared cache tier connected");
        } else {
            tracing::warn!(
                "Redis does not answer yet: serving from the in-process cache and the database until it does"
            );
        }
    }
    cache.spawn_sweeper(Duration::from_secs(30));
    let hotel = HotelCache::new(cache);

    // One namespace for everything /metrics exports: `hotel_…`.
    let mut metrics = MetricsRegistry::with_prefix("hotel");
    metrics.register_tracker(&tracker);
    metrics.register_pool(&primary);
    metrics
        .registry_mut()
        .register_collector(Box::new(hotel.cache().metrics()));
    let http = HttpMetrics::register(metrics.registry_mut());
    if reads.replica().is_some() {
        metrics.registry_mut().register_collector(Box::new(
            crate::replica_metrics::ReplicaMetrics::new(reads.clone()),
        ));
    }

    let backups = match &settings.backup_dir {
        Some(dir) => Some(Arc::new(backup::BackupRepository::open(dir).with_context(
            || format!("while opening the backup directory {}", dir.display()),
        )?)),
        None => None,
    };

    let today = chrono::Utc::now().date_naive();
    let report = hotel
        .cache()
        .prewarm(hotel.prewarm_jobs(&primary, today), 2)
        .await;
    tracing::info!(
        loaded = report.loaded,
        failed = report.failed.len(),
        "cache pre-warmed"
    );
    for failure in &report.failed {
        tracing::warn!(key = %failure.key, error = %failure.error, "pre-warm failed");
    }

    Ok(AppState::new(crate::state::Shared {
        primary,
        reads,
        hotel,
        tracker,
        metrics: Arc::new(metrics),
        http,
        backups,
    }))
}

/// How often the read replica's lag and reachability are measured.
const REPLICA_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the read replica's pool: PostgreSQL only, like the primary; lazily, so a standby
/// that is down at start does not stop the server (reports read the primary until it is up);
/// with a short acquire timeout, as a report waits for it before falling back.
async fn connect_replica(
    url: &str,
    primary: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    let redacted = db_connect::redact_password(url);
    let backend = db_connect::Backend::of_url(url)
        .with_context(|| format!("while reading the replica's URL {redacted}"))?;
    if backend != db_connect::Backend::Postgres
        || db_connect::Backend::of_connection(primary) != db_connect::Backend::Postgres
    {
        anyhow::bail!(
            "a read replica is a PostgreSQL streaming standby of a PostgreSQL primary; {redacted} with this primary is not"
        );
    }
    let settings = db_connect::ConnectionSettings {
        acquire_timeout: REPLICA_ACQUIRE_TIMEOUT,
        connect_lazily: true,
        ..db_connect::ConnectionSettings::default()
    };
    db_connect::connect_with(url, &settings)
        .await
        .with_context(|| format!("while connecting to the replica {redacted}"))
}

/// The longest a report waits for a connection to the replica before reading the primary.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Applies pending migrations; when the database already holds data, only after a verified
/// pre-migration backup into `backup_dir` (unless `skip_backup`): the path `migration`'s CLI
/// and `hotel-backup pre-migration` take, [`migration::migrate_behind_backup`].
///
/// # Errors
///
/// When the backup or a migration fails; nothing is migrated without the backup.
pub async fn migrate(
    db: &DatabaseConnection,
    url: &str,
    backup_dir: Option<&std::path::Path>,
    skip_backup: bool,
) -> anyhow::Result<()> {
    let migrated = migration::migrate_behind_backup(db, url, backup_dir, skip_backup)
        .await
        .context("while migrating the database")?;
    match migrated.gate {
        Some(migration::Gate::BackedUp(id)) => {
            tracing::info!(%id, "verified pre-migration backup taken")
        }
        Some(migration::Gate::Skipped) => {
            tracing::warn!("applied migrations without a pre-migration backup (--skip-backup)")
        }
        Some(migration::Gate::NothingToBackUp) | None => {}
    }
    if !migrated.applied.is_empty() {
        tracing::info!(applied = ?migrated.applied, "migrations applied");
    }
    Ok(())
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the requests in
/// flight and closes the database pools.
///
/// # Errors
///
/// When the server fails (not when a request does).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("while reading the listening address")?;
    let limits = limits.fitted(crate::serving::descriptors::soft_limit());
    tracing::info!(
        %address,
        max_connections = limits.max_connections,
        max_requests_in_flight = limits.max_requests_in_flight,
        "hotel-server listening on http://{address}"
    );
    let app = crate::app::app(state.clone(), limits);
    crate::serving::serve(
        listener,
        app,
        limits.connections(),
        state.http.clone(),
        shutdown,
    )
    .await;
    tracing::info!("stopped accepting; in-flight requests finished");
    let _ = state.primary.close_by_ref().await;
    if let Some(replica) = state.reads.replica() {
        let _ = replica.close_by_ref().await;
    }
    Ok(())
}

/// Continuous replication running beside the server (`--replicate-to`).
pub struct ReplicationHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<backup::Result<backup::replicate::ReplicationStatus>>,
}

/// Starts replicating the SQLite database of `database_url` into `repository`.
///
/// # Errors
///
/// When the database is not a SQLite file, or the repository cannot be opened.
pub fn start_replication(
    database_url: &str,
    repository: &backup::RepositoryLocation,
) -> anyhow::Result<ReplicationHandle> {
    let backup::Source::Sqlite { path } = backup::Source::from_url(database_url)
        .context("while reading the database URL for --replicate-to")?
    else {
        anyhow::bail!("--replicate-to follows a SQLite database; PostgreSQL has WAL archiving");
    };
    let repo = backup::BackupRepository::builder(repository.clone())
        .s3_settings(backup::S3Settings::from_lookup(|name| {
            std::env::var(name).ok()
        }))
        .open()
        .with_context(|| format!("while opening the repository {repository}"))?;
    let replicator = backup::replicate::Replicator::new(
        repo,
        path,
        backup::replicate::ReplicatorOptions::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tracing::info!(repository = %repository, "continuous replication started");
    let task = tokio::spawn(replicator.run(async {
        let _ = stopped.await;
    }));
    Ok(ReplicationHandle { stop, task })
}

impl ReplicationHandle {
    /// Stops it once the server has stopped writing: what is unshipped is shipped first.
    ///
    /// # Errors
    ///
    /// When replication had failed for good.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let last = self
            .task
            .await
            .context("while stopping replication")?
            .context("replication failed")?;
        tracing::info!(
            segments = last.segments,
            last_seq = last.last_seq,
            "continuous replication stopped"
        );
        Ok(())
    }
}
