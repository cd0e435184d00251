//! hotel-server as a process of the test's own: started with an environment, killed with
//! `SIGKILL` (and always killed when dropped, even when the test fails), restarted on the
//! same port.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_hotel-server");

/// How long a server may take to start listening (a debug build on a busy machine).
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A running `hotel-server`.
pub struct ServerProcess {
    env: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    /// Where the current life's lines start in `log`.
    life_starts: usize,
    /// Everything it logged, in every life.
    log: Arc<Mutex<Vec<String>>>,
    /// Keeps the backup directory (and anything else) alive as long as the server.
    _dir: Arc<tempfile::TempDir>,
}

/// How a start ended.
pub enum Started {
    /// Listening.
    Listening,
    /// Exited before listening.
    Exited(String),
}

impl ServerProcess {
    /// Spawns without waiting; see [`wait_listening`](Self::wait_listening).
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let port = db_connect::testing::free_port();
        let mut all: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.into()),
            ("BIND".into(), format!("127.0.0.1:{port}")),
            (
                "BACKUP_DIR".into(),
                PathBuf::from(dir.path())
                    .join("backups")
                    .display()
                    .to_string(),
            ),
            ("LOG_FORMAT".into(), "json".into()),
            ("RUST_LOG".into(), "info,sqlx=warn".into()),
        ];
        for (key, value) in env {
            all.retain(|(k, _)| k != key);
            all.push(((*key).into(), (*value).into()));
        }
        let mut server = Self {
            env: all,
            port,
            child: None,
            life_starts: 0,
            log: Arc::default(),
            _dir: dir,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut command = Command::new(BIN);
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((_, url)) = self.env.iter().find(|(k, _)| k == "REDIS_URL") {
            command.env("REDIS_URL", url);
        }
        self.life_starts = self.log.lock().unwrap().len();
        let mut child = command.spawn().expect("spawn hotel-server");
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
    }

    /// Waits until the server logs that it listens, or exits.
    pub fn wait_listening(&mut self) -> Started {
        let deadline = std::time::Instant::now() + START_PATIENCE;
        let seen = self.life_starts;
        loop {
            let listening = {
                let log = self.log.lock().unwrap();
                log[seen.min(log.len())..]
                    .iter()
                    .any(|line| line.contains("hotel-server listening on"))
            };
            if listening {
                return Started::Listening;
            }
            let child = self.child.as_mut().expect("a running server");
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Started::Exited(format!("{status}; log:\n{}", self.log_text()));
            }
            if std::time::Instant::now() > deadline {
                return Started::Exited(format!(
                    "not listening after {START_PATIENCE:?}; log:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Starts it again after [`kill`](Self::kill), with the same environment and port, and
    /// waits until it listens.
    ///
    /// # Panics
    ///
    /// When it does not start.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        if let Started::Exited(why) = self.wait_listening() {
            panic!("hotel-server did not start again: {why}");
        }
    }

    /// Waits until it listens.
    ///
    /// # Panics
    ///
    /// When it exits or does not listen in time.
    pub fn expect_listening(&mut self) {
        if let Started::Exited(why) = self.wait_listening() {
            panic!("hotel-server did not start: {why}");
        }
    }

    /// `SIGKILL`: the process dies mid-request, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
