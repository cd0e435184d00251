//! A `redis-server` of the test's own, for tests that stop, pause or restart Redis.
//!
//! The shared Redis on 127.0.0.1:6379 must never be stopped, so a fault test starts one on a
//! free port, with no persistence and a temporary working directory, and may kill it
//! (`SIGKILL`), pause it (`SIGSTOP`: it keeps its connections open and answers nothing, like a
//! hung or partitioned server) and start it again, empty, on the same port. The process is
//! killed when the [`RedisServer`] is dropped.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{free_port, service_unavailable};

/// How long the server may take to accept connections.
const PATIENCE: Duration = Duration::from_secs(10);

/// A `redis-server` the test owns.
///
/// ```no_run
/// use db_connect::testing::RedisServer;
/// let Some(mut redis) = RedisServer::start() else { return };
/// let url = redis.url();       // redis://127.0.0.1:<port>
/// redis.pause();               // SIGSTOP: connections stay open, nothing answers
/// redis.resume();              // SIGCONT
/// redis.stop();                // SIGKILL
/// redis.restart();             // empty again, same port
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    paused: bool,
}

impl RedisServer {
    /// Starts a server on a free port; `None` (after a `SKIP` line) without `redis-server`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing and `HOTEL_REQUIRE_SERVICES=1`, or when it does not
    /// start.
    pub fn start() -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hotel-redis-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        let mut server = Self {
            port: 0,
            dir,
            child: None,
            paused: false,
        };
        for _ in 0..3 {
            server.port = free_port();
            match server.spawn() {
                Ok(true) => return Some(server),
                // Another process took the port between the probe and the bind.
                Ok(false) => continue,
                Err(err) => {
                    service_unavailable("redis-server", &err.to_string());
                    return None;
                }
            }
        }
        panic!("cannot start a redis-server of the test's own");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process runs (paused or not).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (`SIGKILL`): connections drop, everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts it again, empty, on the same port (stopping it first if it runs).
    ///
    /// # Panics
    ///
    /// When it does not start.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            matches!(self.spawn(), Ok(true)),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// `SIGSTOP`: the server keeps its sockets open and answers nothing until
    /// [`resume`](Self::resume).
    pub fn pause(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGSTOP);
            self.paused = true;
        }
    }

    /// `SIGCONT` after [`pause`](Self::pause): it answers what piled up.
    pub fn resume(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGCONT);
        }
        self.paused = false;
    }

    fn pid(&self) -> Option<Pid> {
        let id = self.child.as_ref()?.id();
        Some(Pid::from_raw(i32::try_from(id).ok()?))
    }

    /// Spawns the process; `Ok(false)` when it exited or never accepted connections.
    fn spawn(&mut self) -> std::io::Result<bool> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + PATIENCE;
        // The port answers once this server is up, unless another process holds it: only
        // this server's own process id in `INFO` will do.
        while !answers_as(self.port, child.id()) {
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
        Ok(true)
    }
}

/// Whether the Redis on `port` is the process `pid`.
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 4096];
    let wanted = format!("process_id:{pid}\r\n");
    // The section is a few hundred bytes; stop as soon as the line is there.
    while let Ok(read @ 1..) = stream.read(&mut buffer) {
        reply.extend_from_slice(&buffer[..read]);
        if String::from_utf8_lossy(&reply).contains(&wanted) {
            return true;
        }
        if reply.len() > 64 * 1024 {
            break;
        }
    }
    false
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; nothing of it is worth keeping.
        self.stop();
    }
}
