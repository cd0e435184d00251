//! The real `hotel-server` binary as a child process, killed when dropped (even when the test
//! fails), with the address it listens on.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_hotel-server");

/// A running `hotel-server`.
pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
    /// Lines the server printed on stdout (tokens, with `--demo`).
    pub stdout: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Runs `command` (the binary, perhaps behind `prlimit`) with `BIND=127.0.0.1:0` and JSON
    /// logs (at `RUST_LOG=info` unless the command sets it), and waits until it says where it
    /// listens.
    pub fn start(mut command: Command) -> Self {
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        command
            .env("BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        // Read both streams to their end on threads, so the server never blocks on a full pipe.
        let (tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, "out:"),
            (Box::new(stderr), "err:"),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(format!("{prefix}{line}"));
                }
            });
        }
        let mut server = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout: Vec::new(),
            lines,
        };
        let mut seen = Vec::new();
        loop {
            let Ok(line) = server.lines.recv_timeout(Duration::from_secs(120)) else {
                panic!(
                    "hotel-server did not say where it listens:\n{}",
                    seen.join("\n")
                );
            };
            if let Some(out) = line.strip_prefix("out:") {
                server.stdout.push(out.to_owned());
            } else if line.contains("listening on")
                && let Some(at) = line.find("http://127.0.0.1:")
            {
                let address = line[at + "http://".len()..]
                    .split(['"', ' ', '\\'])
                    .next()
                    .unwrap();
                server.address = address.parse().unwrap();
                return server;
            }
            seen.push(line);
        }
    }

    /// Waits until the server has printed a line starting with `prefix` on stdout (the two
    /// streams are read on threads of their own, so stdout may lag behind the logs).
    pub fn wait_for_stdout(&mut self, prefix: &str) {
        while !self.stdout.iter().any(|line| line.starts_with(prefix)) {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("hotel-server never printed {prefix}"));
            if let Some(out) = line.strip_prefix("out:") {
                self.stdout.push(out.to_owned());
            }
        }
    }

    /// Lines logged since the last call.
    pub fn drain_logs(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// SIGTERM, and the exit status: the server stops gracefully.
    pub fn stop(self) -> std::process::ExitStatus {
        self.stop_and_collect().0
    }

    /// SIGTERM, the exit status, and every line not drained yet up to the server's last
    /// (both streams are read to their end).
    pub fn stop_and_collect(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        // The reader threads hold the only senders: the iteration ends at both streams' EOF.
        let lines = std::mem::replace(&mut self.lines, mpsc::channel().1)
            .iter()
            .collect();
        (status, lines)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
