//! The open connections: what each is doing, how long it may keep doing it, and which one gives
//! way when the table is full.
//!
//! A connection is in one of three phases, and each phase has its own deadline:
//!
//! | phase | entered when | closed after |
//! |---|---|---|
//! | idle | accepted, or its last response was written | `idle_timeout` |
//! | reading a request head | the first byte arrives while idle | `header_read_timeout` |
//! | busy | a request's head is complete, until its response body is written | `busy_timeout` |
//!
//! Only the connection's own task changes its phase (hyper reads, calls the service and writes
//! the response on that task), so the atomics below need no ordering beyond their own value; the
//! accept loop only reads them to pick a connection to evict.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

/// How long a connection may stay in each phase, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; at the limit, the connection idle the longest is closed
    /// to make room (or, when every one is busy, the new one is refused).
    pub max_connections: usize,
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// With no request in progress and none arriving.
    pub idle_timeout: Duration,
    /// From a complete request head to the end of its response body.
    pub busy_timeout: Duration,
}

/// Why a connection was closed by the server rather than by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Idle for longer than the idle timeout.
    IdleTimeout,
    /// A request head took longer than the header-read timeout.
    HeaderTimeout,
    /// One request took longer than the busy timeout.
    BusyTimeout,
    /// Closed while idle to make room for a new connection.
    Evicted,
    /// Refused on arrival: the table was full of busy connections.
    Refused,
}

impl CloseReason {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::HeaderTimeout => "header_timeout",
            Self::BusyTimeout => "busy_timeout",
            Self::Evicted => "evicted",
            Self::Refused => "refused",
        }
    }
}

/// One connection's phase, shared by its task, its reader and its request counter.
#[derive(Debug)]
pub(crate) struct Connection {
    id: u64,
    clock: Clock,
    /// Requests whose head has been read and whose response body is not yet written.
    requests: AtomicU32,
    /// Bytes of a request head arrived while no request was in progress.
    reading_head: AtomicBool,
    /// When the current phase began, in clock milliseconds.
    since_ms: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
}

/// What the deadline check found.
pub(crate) enum Verdict {
    /// Check again at this instant.
    KeepUntil(Instant),
    /// Close the connection.
    Close(CloseReason),
}

impl Connection {
    /// Called by the reader when bytes arrive.
    pub(crate) fn bytes_received(&self) {
        if self.requests.load(Relaxed) == 0 && !self.reading_head.load(Relaxed) {
            self.reading_head.store(true, Relaxed);
            self.since_ms.store(self.clock.now_ms(), Relaxed);
        }
    }

    /// Called when a request's head is complete and it goes to the application.
    pub(crate) fn request_started(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.reading_head.store(false, Relaxed);
        self.since_ms.store(self.clock.now_ms(), Relaxed);
    }

    /// Called when a request's response body has been written (or dropped).
    pub(crate) fn request_finished(&self) {
        if self.requests.fetch_sub(1, Relaxed) == 1 {
            self.since_ms.store(self.clock.now_ms(), Relaxed);
        }
    }

    /// Whether a request is in progress.
    pub(crate) fn is_busy(&self) -> bool {
        self.requests.load(Relaxed) > 0
    }

    /// Whether the accept loop asked this connection to give way.
    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Relaxed)
    }

    /// Completes when the accept loop asks this connection to give way.
    pub(crate) async fn eviction(&self) {
        while !self.is_evicted() {
            self.wake.notified().await;
        }
    }

    /// Whether the current phase has outlived its deadline.
    pub(crate) fn check(&self, limits: &ConnectionLimits) -> Verdict {
        let (allowed, reason) = if self.is_busy() {
            (limits.busy_timeout, CloseReason::BusyTimeout)
        } else if self.reading_head.load(Relaxed) {
            (limits.header_read_timeout, CloseReason::HeaderTimeout)
        } else {
            (limits.idle_timeout, CloseReason::IdleTimeout)
        };
        let deadline = self.clock.instant(self.since_ms.load(Relaxed)) + allowed;
        if Instant::now() >= deadline {
            Verdict::Close(reason)
        } else {
            Verdict::KeepUntil(deadline)
        }
    }
}

/// Milliseconds since the table was made: phase starts fit in an atomic.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_ms(self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    fn instant(self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// The open connections, bounded by [`ConnectionLimits::max_connections`].
#[derive(Debug)]
pub(crate) struct ConnectionTable {
    limit: usize,
    clock: Clock,
    state: Mutex<TableState>,
}

#[derive(Debug, Default)]
struct TableState {
    next_id: u64,
    open: HashMap<u64, Arc<Connection>>,
}

impl ConnectionTable {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            clock: Clock(Instant::now()),
            state: Mutex::new(TableState::default()),
        }
    }

    /// Registers a new connection. At the limit, the connection idle the longest gives way
    /// (it is marked and woken, and leaves the table at once); when none is idle the new one is
    /// refused (None). Returns the new connection and whether one was evicted for it.
    pub(crate) fn admit(&self) -> Option<(Arc<Connection>, bool)> {
        let mut state = self.state.lock();
        let evicted = if state.open.len() >= self.limit {
            if !Self::evict_locked(&mut state) {
                return None;
            }
            true
        } else {
            false
        };
        state.next_id += 1;
        let connection = Arc::new(Connection {
            id: state.next_id,
            clock: self.clock,
            requests: AtomicU32::new(0),
            reading_head: AtomicBool::new(false),
            since_ms: AtomicU64::new(self.clock.now_ms()),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        state.open.insert(connection.id, Arc::clone(&connection));
        Some((connection, evicted))
    }

    /// Asks the connection idle the longest to close, to free its descriptor. Returns whether
    /// there was one.
    pub(crate) fn evict_one(&self) -> bool {
        Self::evict_locked(&mut self.state.lock())
    }

    fn evict_locked(state: &mut TableState) -> bool {
        let oldest = state
            .open
            .values()
            .filter(|c| !c.is_busy())
            .min_by_key(|c| c.since_ms.load(Relaxed))
            .map(|c| c.id);
        let Some(victim) = oldest.and_then(|id| state.open.remove(&id)) else {
            return false;
        };
        victim.evicted.store(true, Relaxed);
        victim.wake.notify_one();
        true
    }

    /// Forgets a connection that has closed.
    pub(crate) fn remove(&self, connection: &Connection) {
        self.state.lock().open.remove(&connection.id);
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_own_deadline() {
        let table = ConnectionTable::new(4);
        let (connection, _) = table.admit().unwrap();
        let closes_after = |expected: CloseReason, secs: u64| {
            let connection = Arc::clone(&connection);
            async move {
                tokio::time::advance(Duration::from_millis(secs * 1000 - 1)).await;
                assert!(matches!(connection.check(&limits()), Verdict::KeepUntil(_)));
                tokio::time::advance(Duration::from_millis(1)).await;
                match connection.check(&limits()) {
                    Verdict::Close(reason) => assert_eq!(reason, expected),
                    Verdict::KeepUntil(at) => panic!("still open until {at:?}"),
                }
            }
        };
        closes_after(CloseReason::IdleTimeout, 10).await;
        connection.bytes_received();
        closes_after(CloseReason::HeaderTimeout, 2).await;
        connection.request_started();
        // More bytes while busy (the body) do not start a head.
        connection.bytes_received();
        closes_after(CloseReason::BusyTimeout, 30).await;
        connection.request_finished();
        closes_after(CloseReason::IdleTimeout, 10).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_and_never_a_busy_one() {
        let table = ConnectionTable::new(limits().max_connections);
        let (first, _) = table.admit().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (second, _) = table.admit().unwrap();
        let (third, evicted) = table.admit().unwrap();
        assert!(evicted && first.is_evicted() && !second.is_evicted());
        first.eviction().await;
        assert_eq!(table.len(), 2);

        second.request_started();
        third.request_started();
        assert!(table.admit().is_none(), "every connection is busy: refuse");
        third.request_finished();
        let (_, evicted) = table.admit().unwrap();
        assert!(evicted && third.is_evicted() && !second.is_evicted());
        table.remove(&second);
        assert_eq!(table.len(), 1);
    }
}
