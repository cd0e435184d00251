//! Hostile sockets against the real binary under a low descriptor limit (issue 16, item 2):
//! with `prlimit --nofile=1024`, 1,100 idle connections made /healthz time out for 50 s, and
//! idle or half-sent connections stayed open for good. Here 1,100 idle connections, then 1,100
//! slowloris connections (half sending their headers a byte at a time, half their bodies),
//! must leave every /healthz answered within a second, and the server must close them all.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use db_connect::{test_on_backends, testing::TestDatabase};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use crate::server_process::{BIN, ServerProcess};

const HOSTILE: usize = 1_100;
/// A correctness bound, not a benchmark: a probe that waits longer is queued behind the attack.
const PROBE_BOUND: Duration = Duration::from_secs(1);
const IDLE_SECS: u64 = 1;
const HEADER_SECS: u64 = 1;
const REQUEST_SECS: u64 = 2;

fn start(test_db: &TestDatabase, backups: &std::path::Path) -> ServerProcess {
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=1024", "--", BIN])
        .env("DATABASE_URL", test_db.url())
        .env("BACKUP_DIR", backups)
        // Environment rather than flags, so the same test runs against a server that predates them.
        .env("IDLE_TIMEOUT_SECS", IDLE_SECS.to_string())
        .env("HEADER_READ_TIMEOUT_SECS", HEADER_SECS.to_string())
        .env("REQUEST_TIMEOUT_SECS", REQUEST_SECS.to_string());
    ServerProcess::start(command)
}

/// One request on a new connection; its status line and headers, and how long it took.
async fn probe(server: &ServerProcess, request: &str) -> (String, Duration) {
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        let mut stream = TcpStream::connect(server.address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&answer).into_owned())
    })
    .await;
    let elapsed = started.elapsed();
    match answer {
        Ok(Ok(answer)) => (answer, elapsed),
        Ok(Err(err)) => (format!("error: {err}"), elapsed),
        Err(_) => ("no answer within 30 s".to_owned(), elapsed),
    }
}

/// Probes /healthz ten times on fresh connections: each must be 200 within the bound. A public
/// route must be answered within the bound too: 200, or 503 with Retry-After when shed.
async fn assert_probes_answered(server: &ServerProcess, during: &str) {
    for _ in 0..10 {
        let (answer, elapsed) = probe(
            server,
            "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && elapsed < PROBE_BOUND,
            "/healthz during {during}: {elapsed:?}, {}",
            answer.lines().next().unwrap_or_default()
        );
    }
    let (answer, elapsed) = probe(
        server,
        "GET /api/room-types HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let shed = answer.starts_with("HTTP/1.1 503")
        && answer.to_ascii_lowercase().contains("retry-after: 1");
    assert!(
        (answer.starts_with("HTTP/1.1 200") || shed) && elapsed < PROBE_BOUND,
        "/api/room-types during {during}: {elapsed:?}, {}",
        answer.lines().next().unwrap_or_default()
    );
}

/// Waits until the server has closed every socket (EOF or reset), or panics at `within`.
async fn assert_all_closed(sockets: Vec<TcpStream>, within: Duration, what: &str) {
    let mut reads = JoinSet::new();
    for mut socket in sockets {
        reads.spawn(async move {
            let mut buffer = [0_u8; 4096];
            loop {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    // A 408 or 503 before the close.
                    Ok(_) => continue,
                }
            }
        });
    }
    let total = reads.len();
    let all = async { while reads.join_next().await.is_some() {} };
    if tokio::time::timeout(within, all).await.is_err() {
        panic!(
            "{} of {total} {what} sockets still open after {within:?}",
            reads.len()
        );
    }
}

/// Opens `n` connections, retrying a connect the kernel's backlog refused for a moment.
async fn open_connections(server: &ServerProcess, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(n);
    while sockets.len() < n {
        match TcpStream::connect(server.address).await {
            Ok(socket) => sockets.push(socket),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    sockets
}

async fn idle_and_slowloris_connections_never_delay_health_checks(test_db: TestDatabase) {
    // The client side holds more than 2,200 sockets.
    let limit = server::serving::descriptors::raise_soft_limit().unwrap_or(0);
    assert!(
        limit >= 3_000,
        "this test needs 3,000 open files (ulimit -n), has {limit}"
    );
    let backups = tempfile::tempdir().unwrap();
    let server = start(&test_db, backups.path());
    assert_probes_answered(&server, "no attack").await;

    // 1. Idle: connect and send nothing, or (every hundredth) one keep-alive request first.
    let mut idle = open_connections(&server, HOSTILE).await;
    for socket in idle.iter_mut().step_by(100) {
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
    }
    // Counted from the last socket opened: opening 1,100 takes seconds on a busy machine, and
    // each socket's idle timer starts at its own accept.
    let opened = Instant::now();
    assert_probes_answered(&server, "1,100 idle connections").await;
    let deadline = Duration::from_secs(IDLE_SECS + 4)
        .saturating_sub(opened.elapsed())
        .max(Duration::from_secs(1));
    assert_all_closed(idle, deadline, "idle").await;

    // 2. Slowloris: half send a request head a byte at a time, half a body.
    let mut slow = open_connections(&server, HOSTILE).await;
    let started = Instant::now();
    for (i, socket) in slow.iter_mut().enumerate() {
        let opening = if i % 2 == 0 {
            "GET /api/room-types HTTP/1.1\r\nHost: test\r\nX-Slow: ".to_owned()
        } else {
            "POST /api/availability/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[".to_owned()
        };
        let _ = socket.write_all(opening.as_bytes()).await;
    }
    let (halves, dribbling) = split_for_dribbling(slow);
    assert_probes_answered(&server, "1,100 slowloris connections").await;
    dribbling.abort();
    let _ = dribbling.await;
    // Heads time out after HEADER_SECS, bodies with the request after REQUEST_SECS.
    let within = Duration::from_secs(REQUEST_SECS + HEADER_SECS + 4)
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let sockets = std::sync::Arc::try_unwrap(halves).unwrap().into_inner();
    assert_all_closed(sockets, within, "slowloris").await;

    assert_probes_answered(&server, "after the attacks").await;
    let logs = server.drain_logs();
    let accept_lines = logs.iter().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_lines <= 2,
        "accept errors are logged once per interval: {accept_lines} lines"
    );
    let status = server.stop();
    assert!(status.success(), "hotel-server exited with {status}");
}

/// Keeps writing one byte every 200 ms to every socket (a space: still a header value, still
/// JSON whitespace) until aborted; hands the sockets back through the mutex.
fn split_for_dribbling(
    sockets: Vec<TcpStream>,
) -> (
    std::sync::Arc<tokio::sync::Mutex<Vec<TcpStream>>>,
    tokio::task::JoinHandle<()>,
) {
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(sockets));
    let writer = std::sync::Arc::clone(&shared);
    let task = tokio::spawn(async move {
        loop {
            {
                let mut sockets = writer.lock().await;
                for socket in sockets.iter_mut() {
                    let _ = socket.try_write(b" ");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (shared, task)
}

test_on_backends!(multi_thread; idle_and_slowloris_connections_never_delay_health_checks);
