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
    /// logs, and waits until it says where it listens.
    pub fn start(mut command: Command) -> Self {
        command
            .env("BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
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

    /// Lines logged since the last call.
    pub fn drain_logs(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// SIGTERM, and the exit status: the server stops gracefully.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
