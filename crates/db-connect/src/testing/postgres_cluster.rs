//! A PostgreSQL server of the test's own, for tests that kill, restart or replicate it.
//!
//! The shared server on 127.0.0.1:5432 must never be stopped or reconfigured, so a fault test
//! runs `initdb` into a temporary directory and starts `postgres` on a free port, as the
//! `postgres` user when the test runs as root (PostgreSQL refuses to run as root). The
//! postmaster is a child of the test process, so a killed one is reaped at once. Everything lives
//! under one temporary directory (data, socket, log) and is gone, processes included, when
//! the [`PostgresCluster`] is dropped.
//!
//! The server runs with `fsync = off`: a test kills the server, never the machine, and a
//! killed server recovers from the WAL the kernel still holds. Commits stay synchronous
//! (`synchronous_commit = on`), so what a client saw committed survives a `SIGKILL`.

use std::{
    ffi::OsStr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, Uid, User},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use super::{free_port, service_unavailable};
use crate::{ConnectionSettings, connect_with};

/// How long starting, stopping or a process's death may take before the fixture gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// A PostgreSQL server the test owns: started by [`PostgresCluster::start`], killed with
/// `SIGKILL`, stopped, restarted, replicated by a streaming standby, and removed on drop.
///
/// ```no_run
/// # async fn demo() {
/// use db_connect::testing::PostgresCluster;
/// let Some(mut primary) = PostgresCluster::start() else { return };
/// let url = primary.create_database("hotel").await;
/// primary.kill();     // SIGKILL of the postmaster and every backend: a crash
/// primary.restart();  // crash recovery, same port
/// let standby = primary.standby(); // pg_basebackup -R, streaming from the primary
/// # let _ = (url, standby);
/// # }
/// ```
#[derive(Debug)]
pub struct PostgresCluster {
    root: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<User>,
    port: u16,
    /// The postmaster, a child of this process so that it is reaped the moment it dies
    /// (a dead postmaster left unreaped would still hold the data directory's lock).
    postmaster: Option<Child>,
    /// Settings given to every start with `-c name=value` (for example `archive_mode`).
    settings: Vec<(String, String)>,
}

impl PostgresCluster {
    /// Creates a cluster with `initdb` and starts it on a free port; `None` (after a `SKIP`
    /// line) when the PostgreSQL server programs are not installed.
    ///
    /// # Panics
    ///
    /// When the programs are missing and `HOTEL_REQUIRE_SERVICES=1`, or when `initdb` or the
    /// server fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with server settings of the test's own, given as `-c name=value`
    /// on every start and restart (WAL archiving: `archive_mode = on` and an
    /// `archive_command`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Self> {
        let bin = match server_bin_dir() {
            Ok(bin) => bin,
            Err(why) => {
                service_unavailable("PostgreSQL server programs (initdb, postgres)", &why);
                return None;
            }
        };
        let cluster = Self::create(bin, settings, |cluster| {
            let data = cluster.data_dir();
            cluster.run_checked(
                "initdb",
                [
                    OsStr::new("-D"),
                    data.as_os_str(),
                    OsStr::new("-U"),
                    OsStr::new("postgres"),
                    OsStr::new("--auth=trust"),
                    OsStr::new("--no-sync"),
                    OsStr::new("--encoding=UTF8"),
                    OsStr::new("--no-locale"),
                ],
            );
        });
        Some(cluster)
    }

    /// A cluster whose data directory `fill` writes (a restore of a physical backup, run as
    /// the server's user: see [`server_user_ids`](Self::server_user_ids)), then started on a
    /// free port with `settings`. It returns once the server accepts connections: a server in
    /// archive recovery does so as a hot standby once consistent, before its replay ends (wait
    /// for `pg_is_in_recovery()` to be false).
    ///
    /// # Panics
    ///
    /// When the server programs are missing and `HOTEL_REQUIRE_SERVICES=1`, or the server
    /// does not start.
    pub fn start_from(settings: &[(&str, &str)], fill: impl FnOnce(&Path)) -> Option<Self> {
        let bin = match server_bin_dir() {
            Ok(bin) => bin,
            Err(why) => {
                service_unavailable("PostgreSQL server programs (initdb, postgres)", &why);
                return None;
            }
        };
        Some(Self::create(bin, settings, |cluster| {
            fill(&cluster.data_dir())
        }))
    }

    /// A temporary directory owned by the server's user, filled by `fill`, then started.
    fn create(bin: PathBuf, settings: &[(&str, &str)], fill: impl FnOnce(&Self)) -> Self {
        let owner = server_user();
        let root = tempfile::Builder::new()
            .prefix("hotel-pg-")
            .tempdir()
            .expect("create a temporary directory for a PostgreSQL cluster");
        if let Some(user) = &owner {
            std::os::unix::fs::chown(
                root.path(),
                Some(user.uid.as_raw()),
                Some(user.gid.as_raw()),
            )
            .expect("give the cluster directory to the postgres user");
        }
        let mut cluster = Self {
            root,
            bin,
            owner,
            port: 0,
            postmaster: None,
            settings: settings
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        };
        fill(&cluster);
        // Another process may take the free port between the probe and the bind: try again.
        for attempt in 1..=3 {
            cluster.port = free_port();
            if cluster.try_start() {
                return cluster;
            }
            eprintln!(
                "PostgreSQL did not start on port {} (attempt {attempt}); log:\n{}",
                cluster.port,
                cluster.log()
            );
        }
        panic!("cannot start a PostgreSQL cluster of the test's own");
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server, as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A new directory `name` beside the data directory, owned by the server's user, so that
    /// what the server runs (an `archive_command`) can write there; removed with the cluster.
    ///
    /// # Panics
    ///
    /// When it cannot be created.
    pub fn owned_dir(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("create a directory beside the cluster");
        if let Some(user) = &self.owner {
            std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("give the directory to the postgres user");
        }
        dir
    }

    /// The user and group ids the server runs as when the test runs as root (`None`: the
    /// test's own), for running a program the way the server's `archive_command` would.
    pub fn server_user_ids(&self) -> Option<(u32, u32)> {
        self.owner
            .as_ref()
            .map(|user| (user.uid.as_raw(), user.gid.as_raw()))
    }

    /// The directory of the server programs (`initdb`, `postgres`, `pg_ctl`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Whether the server was started and not killed or stopped since.
    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates `name` and returns its URL.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn create_database(&self, name: &str) -> String {
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await;
        self.url(name)
    }

    /// Runs one statement on `database` over a connection of its own.
    ///
    /// # Panics
    ///
    /// When the server refuses or the statement fails.
    pub async fn execute(&self, database: &str, sql: &str) {
        let db = self.connect(database).await;
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("`{sql}` on the test's cluster: {err}"));
        let _ = db.close().await;
    }

    /// Terminates every other session on `database` (`pg_terminate_backend`), as an
    /// administrator or a failover would; returns how many were terminated.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub async fn terminate_backends(&self, database: &str) -> u64 {
        let db = self.connect("postgres").await;
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                [database.into()],
            ))
            .await
            .expect("terminate the backends")
            .expect("a count");
        let _ = db.close().await;
        row.try_get_by_index::<i64>(0)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    }

    /// `SIGSTOP` of the postmaster and every process it started: a server that hangs (a
    /// paused VM, a frozen disk) with every connection still open and nothing answered, until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        // Twice: the second pass stops a backend the postmaster forked during the first.
        for _ in 0..2 {
            for pid in processes_in(&self.data_dir()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            }
        }
    }

    /// `SIGCONT` after [`pause`](Self::pause): the server goes on where it stopped.
    pub fn resume(&self) {
        for pid in processes_in(&self.data_dir()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
    }

    /// `SIGKILL` of the postmaster and every process it started, at once: what a crash or an
    /// OOM kill does. The next [`restart`](Self::restart) runs crash recovery.
    ///
    /// # Panics
    ///
    /// When a process survives the signal.
    pub fn kill(&mut self) {
        assert!(self.kill_all(), "PostgreSQL processes survived SIGKILL");
    }

    /// [`kill`](Self::kill) that reports instead of panicking (for `Drop`).
    fn kill_all(&mut self) -> bool {
        // The postmaster first, so that it cannot react to its children's deaths or fork new
        // ones; then every process working in the data directory (each server process has
        // it as its working directory), which also finds a backend forked a moment before.
        if let Some(mut postmaster) = self.postmaster.take() {
            let _ = postmaster.kill();
            let _ = postmaster.wait();
        }
        let data = self.data_dir();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = processes_in(&data);
            if left.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the server cleanly (a fast shutdown: sessions are disconnected, the WAL is
    /// checkpointed).
    pub fn stop(&mut self) {
        if let Some(mut postmaster) = self.postmaster.take() {
            if let Ok(pid) = i32::try_from(postmaster.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            }
            let _ = postmaster.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill): crash
    /// recovery first); returns once it accepts connections.
    ///
    /// # Panics
    ///
    /// When it does not start.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.try_start(),
            "PostgreSQL did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// A streaming standby of this server: `pg_basebackup -R` into a directory of its own,
    /// started on another free port. It replays what the primary commits, read-only, until
    /// it is dropped.
    ///
    /// # Panics
    ///
    /// When the base backup or the standby's start fails.
    pub fn standby(&self) -> Self {
        Self::create(self.bin.clone(), &[], |standby| {
            let data = standby.data_dir();
            let port = self.port.to_string();
            standby.run_checked(
                "pg_basebackup",
                [
                    OsStr::new("-h"),
                    OsStr::new("127.0.0.1"),
                    OsStr::new("-p"),
                    OsStr::new(&port),
                    OsStr::new("-U"),
                    OsStr::new("postgres"),
                    OsStr::new("-D"),
                    data.as_os_str(),
                    OsStr::new("-R"),
                    OsStr::new("-X"),
                    OsStr::new("stream"),
                    OsStr::new("--checkpoint=fast"),
                    OsStr::new("--no-sync"),
                ],
            );
        })
    }

    /// On a standby: stops (`true`) or resumes (`false`) replaying the WAL it receives, so that
    /// it lags behind the primary for as long as the test wants.
    ///
    /// # Panics
    ///
    /// When the server refuses (for example, it is not a standby).
    pub async fn pause_replay(&self, paused: bool) {
        let sql = if paused {
            "SELECT pg_wal_replay_pause()"
        } else {
            "SELECT pg_wal_replay_resume()"
        };
        self.execute("postgres", sql).await;
    }

    /// The postmaster's process id, while it runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        i32::try_from(self.postmaster.as_ref()?.id()).ok()
    }

    async fn connect(&self, database: &str) -> DatabaseConnection {
        let settings = ConnectionSettings {
            max_connections: Some(1),
            acquire_timeout: Duration::from_secs(10),
            ..ConnectionSettings::default()
        };
        connect_with(&self.url(database), &settings)
            .await
            .unwrap_or_else(|err| panic!("connect to the test's cluster: {err}"))
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// Starts the postmaster and waits until it accepts connections; `false` if it exits.
    fn try_start(&mut self) -> bool {
        let data = self.data_dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the cluster's log");
        let log_err = log.try_clone().expect("open the cluster's log");
        let port = self.port.to_string();
        let socket_dir = self.root.path().to_path_buf();
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port, "-k"])
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=100", "-c", "wal_keep_size=64MB"]);
        for (name, value) in &self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command.stdout(log).stderr(log_err);
        let mut postmaster = command.spawn().expect("spawn postgres");
        let deadline = Instant::now() + PATIENCE;
        loop {
            // pg_ctl's test: the lock file, written by this postmaster (a killed one leaves its
            // own behind), says that it accepts connections.
            let ready = std::fs::read_to_string(data.join("postmaster.pid")).is_ok_and(|text| {
                let lines: Vec<&str> = text.lines().map(str::trim).collect();
                lines.first() == Some(&postmaster.id().to_string().as_str())
                    && lines.get(7) == Some(&"ready")
            });
            if ready {
                self.postmaster = Some(postmaster);
                return true;
            }
            if matches!(postmaster.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = postmaster.kill();
                let _ = postmaster.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One of the server's programs, set to run as the server's user in the cluster's directory.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some(user) = &self.owner {
            // std drops root's supplementary groups along with the user.
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        command.current_dir(self.root.path()).stdin(Stdio::null());
        command
    }

    /// Runs one of the server's programs as the server's user.
    fn run<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"))
    }

    fn run_checked<I, S>(&self, program: &str, args: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.run(program, args);
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        // Nothing of the test's cluster is worth a clean shutdown; the directory goes next.
        if !self.kill_all() {
            eprintln!("warning: processes of the test's PostgreSQL cluster survived SIGKILL");
        }
    }
}

/// The user the server runs as: `postgres` when this process is root, else this process's.
fn server_user() -> Option<User> {
    if !Uid::effective().is_root() {
        return None;
    }
    let user = User::from_name("postgres")
        .ok()
        .flatten()
        .expect("a `postgres` user to run the test's PostgreSQL server as (tests run as root)");
    Some(user)
}

/// Where `initdb` and `postgres` are: `HOTEL_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else the `PATH`.
fn server_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("HOTEL_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let debian = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(debian).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .max_by_key(|(version, _)| *version)
    });
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        })
        .ok_or_else(|| {
            "no initdb under /usr/lib/postgresql/*/bin or on the PATH (set HOTEL_TEST_PG_BIN)"
                .to_owned()
        })
}

/// Whether `pid` runs (a zombie, already dead but not yet reaped, does not).
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The live processes whose working directory is `dir`.
fn processes_in(dir: &Path) -> Vec<i32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            (cwd == dir && is_alive(pid)).then_some(pid)
        })
        .collect()
}

/// The state from `/proc/<pid>/stat` (`pid (comm) state …`; the command name may hold spaces
/// and parentheses, so the field is read after its last `)`).
fn process_state(stat: &str) -> Option<&str> {
    stat[stat.rfind(')')? + 1..].split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_state_survives_odd_command_names() {
        assert_eq!(
            process_state("123 (postgres: a) b) S 77 123 123 0"),
            Some("S")
        );
        assert_eq!(process_state("garbage"), None);
    }
}
