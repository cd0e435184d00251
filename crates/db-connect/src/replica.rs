//! Reads that may go to a PostgreSQL streaming standby, without ever reading the past: see
//! [`ReadRouter`].

use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::{ConnectionFailure, retry_on_lost_connection};

/// How reads are routed to a standby.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSettings {
    /// The longest a read waits for the standby to replay the primary's current position
    /// before it runs on the primary instead. A standby measured further behind than this is
    /// not asked at all.
    pub max_wait: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(100),
        }
    }
}

/// The standby's state at its last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaHealth {
    /// Not checked yet.
    Unknown,
    /// It answers and replays the primary's WAL, at most `lag` behind (the age of the newest
    /// primary position it has replayed; zero when it has replayed the primary's current one).
    Streaming {
        /// How stale its data may be.
        lag: Duration,
    },
    /// It does not answer (down, unreachable, or out of connections).
    Unreachable,
    /// It answers but is not in recovery (promoted, or not a standby): reads stay on the
    /// primary, as it no longer follows it.
    NotStandby,
}

/// Where reads went, and the standby's state, for health reports and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The standby's state at its last check.
    pub health: ReplicaHealth,
    /// Reads answered by the standby.
    pub replica_reads: u64,
    /// Reads sent to the primary because the standby had not replayed far enough in time.
    pub primary_reads_lagging: u64,
    /// Reads sent to the primary because the standby was unreachable or no longer a standby.
    pub primary_reads_unavailable: u64,
}

/// Routes reads between a primary and, when there is one, a streaming standby. Cheap to
/// clone: clones share the standby's state and counters.
///
/// A standby replays the primary's WAL some time after the primary committed it: a report read
/// there right after a booking returned could miss the booking. [`ReadRouter::read`] therefore
/// sends a read to the standby only when the standby has replayed everything the primary had
/// written when the read began (the primary's current WAL position, compared with the
/// standby's replay position: two small round trips, no table touched on the primary). When
/// the standby does not catch up within [`ReplicaSettings::max_wait`], is unreachable, or is
/// no longer a standby (promoted), the read runs on the primary instead. Either way the answer
/// reflects every write that returned before the read began; the standby only takes the load.
///
/// [`ReadRouter::check`] measures the standby's staleness for monitoring (and
/// [`ReadRouter::spawn_monitor`] does so periodically): the age of the newest primary position
/// the standby has replayed, an upper bound that stays at zero while the primary is idle,
/// unlike `now() - pg_last_xact_replay_timestamp()`.
///
/// Without a standby every read runs on the primary, so code can take a `ReadRouter`
/// everywhere and a deployment decides whether a standby exists.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sea_orm::DbErr> {
/// use db_connect::ReadRouter;
/// use sea_orm::ConnectionTrait;
///
/// let primary = db_connect::connect("sqlite::memory:").await.map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
/// // No standby here: every read runs on the primary.
/// let reads = ReadRouter::from(&primary);
/// let answer = reads
///     .read(|db| async move { db.execute_unprepared("SELECT 1").await.map(|_| 1) })
///     .await?;
/// assert_eq!(answer, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReadRouter {
    primary: DatabaseConnection,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    connection: DatabaseConnection,
    settings: ReplicaSettings,
    state: Mutex<ReplicaState>,
    replica_reads: AtomicU64,
    primary_reads_lagging: AtomicU64,
    primary_reads_unavailable: AtomicU64,
}

#[derive(Default)]
struct ReplicaState {
    health: Option<ReplicaHealth>,
    /// The primary's WAL positions at the instants [`ReadRouter::check`] sampled them, oldest
    /// first; only those the standby may not have replayed yet, plus the newest replayed one.
    samples: VecDeque<(Instant, i64)>,
}

/// Samples kept at most: at one check a second, an hour of lag can be measured exactly;
/// beyond that the lag reported is a lower bound of an hour.
const MAX_SAMPLES: usize = 3_600;

/// The primary's current WAL position, as bytes from the start of the WAL.
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint";
/// The standby's replay position, NULL when it is not in recovery.
const REPLAY_POSITION: &str = "SELECT CASE WHEN pg_is_in_recovery() \
     THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END";

impl fmt::Debug for ReadRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadRouter")
            .field("replica", &self.status())
            .finish_non_exhaustive()
    }
}

impl From<&DatabaseConnection> for ReadRouter {
    fn from(primary: &DatabaseConnection) -> Self {
        Self {
            primary: primary.clone(),
            replica: None,
        }
    }
}

impl From<&ReadRouter> for ReadRouter {
    fn from(router: &ReadRouter) -> Self {
        router.clone()
    }
}

impl ReadRouter {
    /// Routes between `primary` and the streaming standby `replica` (both PostgreSQL; the
    /// standby's pool should have a short acquire timeout, as a read waits for it before
    /// falling back).
    pub fn with_replica(
        primary: DatabaseConnection,
        replica: DatabaseConnection,
        settings: ReplicaSettings,
    ) -> Self {
        Self {
            primary,
            replica: Some(Arc::new(Replica {
                connection: replica,
                settings,
                state: Mutex::new(ReplicaState::default()),
                replica_reads: AtomicU64::new(0),
                primary_reads_lagging: AtomicU64::new(0),
                primary_reads_unavailable: AtomicU64::new(0),
            })),
        }
    }

    /// The primary.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// The standby, when there is one.
    pub fn replica(&self) -> Option<&DatabaseConnection> {
        self.replica.as_ref().map(|replica| &replica.connection)
    }

    /// The standby's state and where reads went; `None` without a standby.
    pub fn status(&self) -> Option<ReplicaStatus> {
        let replica = self.replica.as_ref()?;
        Some(ReplicaStatus {
            health: replica
                .state
                .lock()
                .health
                .unwrap_or(ReplicaHealth::Unknown),
            replica_reads: replica.replica_reads.load(Ordering::Relaxed),
            primary_reads_lagging: replica.primary_reads_lagging.load(Ordering::Relaxed),
            primary_reads_unavailable: replica.primary_reads_unavailable.load(Ordering::Relaxed),
        })
    }

    /// Runs `read` on the standby when it has replayed everything the primary had written
    /// when this call began, otherwise on the primary (see [`ReadRouter`]). A read
    /// that fails on the standby because it became unreachable runs again on the primary; on
    /// the primary, a read whose connection turns out dead runs again on a fresh one
    /// ([`retry_on_lost_connection`]).
    ///
    /// # Errors
    ///
    /// What `read` returns on the primary, or on the standby for failures other than the
    /// standby being unavailable; a failure to read the primary's WAL position.
    pub async fn read<T, E, F, Fut>(&self, mut read: F) -> Result<T, E>
    where
        F: FnMut(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: ConnectionFailure + From<DbErr> + fmt::Display,
    {
        if let Some(replica) = &self.replica {
            match self.replica_is_fresh(replica).await? {
                Freshness::Fresh => match read(replica.connection.clone()).await {
                    Err(err) if err.is_unavailable() => {
                        tracing::warn!(error = %err, "read replica failed; reading the primary");
                        replica.set_health(ReplicaHealth::Unreachable);
                        replica
                            .primary_reads_unavailable
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    answer => {
                        replica.replica_reads.fetch_add(1, Ordering::Relaxed);
                        return answer;
                    }
                },
                Freshness::Behind => {
                    replica
                        .primary_reads_lagging
                        .fetch_add(1, Ordering::Relaxed);
                }
                Freshness::Unavailable => {
                    replica
                        .primary_reads_unavailable
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        retry_on_lost_connection(|| read(self.primary.clone())).await
    }

    /// Whether the standby has replayed the primary's current position, waiting up to
    /// `max_wait` for it.
    async fn replica_is_fresh(&self, replica: &Replica) -> Result<Freshness, DbErr> {
        let known = replica.state.lock().health;
        match known {
            Some(ReplicaHealth::Unreachable | ReplicaHealth::NotStandby) => {
                return Ok(Freshness::Unavailable);
            }
            Some(ReplicaHealth::Streaming { lag }) if lag > replica.settings.max_wait => {
                return Ok(Freshness::Behind);
            }
            _ => {}
        }
        let target = retry_on_lost_connection(|| position(&self.primary, PRIMARY_POSITION))
            .await?
            .ok_or_else(|| DbErr::Custom("the primary reported no WAL position".into()))?;
        let deadline = Instant::now() + replica.settings.max_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            match position(&replica.connection, REPLAY_POSITION).await {
                Ok(Some(replayed)) if replayed >= target => return Ok(Freshness::Fresh),
                Ok(Some(_)) => {}
                Ok(None) => {
                    replica.set_health(ReplicaHealth::NotStandby);
                    return Ok(Freshness::Unavailable);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "read replica unavailable; reading the primary");
                    replica.set_health(ReplicaHealth::Unreachable);
                    return Ok(Freshness::Unavailable);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Freshness::Behind);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Measures the standby: reachable, still a standby, and how stale (see
    /// [`ReplicaHealth::Streaming`]). Reads skip a standby found unreachable or more than
    /// `max_wait` behind until a later check finds it back. `None` without a standby.
    pub async fn check(&self) -> Option<ReplicaHealth> {
        let replica = self.replica.as_ref()?;
        let sampled_at = Instant::now();
        // Sample the primary before the standby: the standby's position is then compared with
        // a primary position no newer than it could have seen.
        match position(&self.primary, PRIMARY_POSITION).await {
            Ok(Some(current)) => replica.record_primary_position(sampled_at, current),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "primary WAL position unavailable"),
        }
        let health = match position(&replica.connection, REPLAY_POSITION).await {
            Ok(Some(replayed)) => ReplicaHealth::Streaming {
                lag: replica.lag(replayed, Instant::now()),
            },
            Ok(None) => ReplicaHealth::NotStandby,
            Err(err) => {
                tracing::debug!(error = %err, "read replica check failed");
                ReplicaHealth::Unreachable
            }
        };
        replica.set_health(health);
        Some(health)
    }

    /// Spawns a task that [checks](Self::check) the standby every `interval` until every clone
    /// of this router is dropped. `None` without a standby.
    pub fn spawn_monitor(&self, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let replica = Arc::downgrade(self.replica.as_ref()?);
        let primary = self.primary.clone();
        Some(tokio::spawn(monitor(primary, replica, interval)))
    }
}

async fn monitor(primary: DatabaseConnection, replica: Weak<Replica>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let router = ReadRouter {
            primary: primary.clone(),
            replica: Some(replica),
        };
        if let Some(health) = router.check().await {
            tracing::trace!(?health, "read replica checked");
        }
    }
}

enum Freshness {
    Fresh,
    Behind,
    Unavailable,
}

impl Replica {
    fn set_health(&self, health: ReplicaHealth) {
        self.state.lock().health = Some(health);
    }

    fn record_primary_position(&self, at: Instant, position: i64) {
        let mut state = self.state.lock();
        if state
            .samples
            .back()
            .is_some_and(|&(_, last)| last == position)
        {
            // Nothing written since: the older sample already dates this position.
            return;
        }
        if state.samples.len() == MAX_SAMPLES {
            state.samples.pop_front();
        }
        state.samples.push_back((at, position));
    }

    /// The age of the newest sampled primary position at or below `replayed`: the standby
    /// holds everything the primary had then. Older samples are dropped.
    fn lag(&self, replayed: i64, now: Instant) -> Duration {
        let mut state = self.state.lock();
        let caught_up = state
            .samples
            .iter()
            .rposition(|&(_, position)| position <= replayed);
        match caught_up {
            Some(newest) => {
                state.samples.drain(..newest);
                match state.samples.get(1) {
                    // Behind a later position: stale since that position's predecessor.
                    Some(_) => now.saturating_duration_since(state.samples[0].0),
                    None => Duration::ZERO,
                }
            }
            // Behind every sample: at least as old as the oldest.
            None => state
                .samples
                .front()
                .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at)),
        }
    }
}

async fn position(db: &DatabaseConnection, sql: &str) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    match row {
        Some(row) => row.try_get_by_index::<Option<i64>>(0),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica() -> Replica {
        Replica {
            connection: DatabaseConnection::default(),
            settings: ReplicaSettings::default(),
            state: Mutex::new(ReplicaState::default()),
            replica_reads: AtomicU64::new(0),
            primary_reads_lagging: AtomicU64::new(0),
            primary_reads_unavailable: AtomicU64::new(0),
        }
    }

    #[test]
    fn lag_is_the_age_of_the_newest_position_replayed() {
        let replica = replica();
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        replica.record_primary_position(at(0), 100);
        replica.record_primary_position(at(1), 100); // idle primary: still dated 0
        replica.record_primary_position(at(2), 200);
        replica.record_primary_position(at(3), 300);
        // Replayed everything: not stale, whatever the samples' age.
        assert_eq!(replica.lag(300, at(10)), Duration::ZERO);
        replica.record_primary_position(at(11), 400);
        replica.record_primary_position(at(12), 500);
        // Holds what the primary had at 11 (400), not yet 500.
        assert_eq!(replica.lag(450, at(13)), Duration::from_secs(2));
        // Behind every sample kept: at least the oldest sample's age.
        assert_eq!(replica.lag(10, at(14)), Duration::from_secs(3));
    }
}
